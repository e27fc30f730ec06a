"""Unitwise tracking: log every AI API call with its usage and cost, without slowing the host.

import tracking
tracking.configure()                       # $UNITWISE_DATABASE_URL, else the local SQLite
with tracking.attribute(user_id="u_42", feature="summarize"):
    tracking.record(provider="openai", model="gpt-4o", input_tokens=1200, output_tokens=300)
client = tracking.instrument(OpenAI())    # every call of the client is logged from now on
"""

from typing import TYPE_CHECKING, Any

from tracking.client import (
    configure,
    flush,
    record,
    refresh_prices,
    shutdown,
    stats,
    track,
    tracked,
)
from tracking.context import attribute
from tracking.integrations import instrument, litellm_callback

if TYPE_CHECKING:
    from tracking.budget_check import (
        BudgetDecision,
        BudgetExceeded,
        check_budget,
        refresh_budgets,
    )

# budget enforcement, imported at first use so that ``import tracking`` stays light
_BUDGET_NAMES = ("BudgetDecision", "BudgetExceeded", "check_budget", "refresh_budgets")


def __getattr__(name: str) -> Any:
    if name in _BUDGET_NAMES:
        from tracking import budget_check

        value = getattr(budget_check, name)
        globals()[name] = value  # later look-ups are plain module attributes
        return value
    raise AttributeError(f"module 'tracking' has no attribute {name!r}")


__all__ = [
    "BudgetDecision",
    "BudgetExceeded",
    "attribute",
    "check_budget",
    "configure",
    "flush",
    "instrument",
    "litellm_callback",
    "record",
    "refresh_budgets",
    "refresh_prices",
    "shutdown",
    "stats",
    "track",
    "tracked",
]

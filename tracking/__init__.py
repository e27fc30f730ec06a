"""Unitwise tracking: log every AI API call with its usage and cost, without slowing the host.

import tracking
tracking.configure()                       # $UNITWISE_DATABASE_URL, else the local SQLite
with tracking.attribute(user_id="u_42", feature="summarize"):
    tracking.record(provider="openai", model="gpt-4o", input_tokens=1200, output_tokens=300)
client = tracking.instrument(OpenAI())    # every call of the client is logged from now on
"""

from tracking.budget_check import BudgetDecision, BudgetExceeded, check_budget, refresh_budgets
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
from tracking.integrations import instrument

__all__ = [
    "BudgetDecision",
    "BudgetExceeded",
    "attribute",
    "check_budget",
    "configure",
    "flush",
    "instrument",
    "record",
    "refresh_budgets",
    "refresh_prices",
    "shutdown",
    "stats",
    "track",
    "tracked",
]

"""``tracking.check_budget``: may this call be made? Answered from memory, with no I/O on the
caller's thread (the spend is loaded in the background by :mod:`tracking.budget_guard`).

Only hard budgets deny. Before the first load (the first seconds of a process, or a store that
has never answered) every call is allowed: enforcement must not stop a host because tracking
cannot reach its store.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import NamedTuple

from tracking import client as _client
from tracking import context


class BudgetDecision(NamedTuple):
    """``allowed`` False only when a hard budget is used up; ``budget`` names the budget that
    decided (the hard one with the least left, else the soft one with the least left; None when
    no budget applies) and ``remaining`` what it has left this period (negative: overspent).

    Immutable; a named tuple rather than a frozen dataclass, which took a third of a check's
    time to build (bench/budget_check.py)."""

    allowed: bool
    remaining: Decimal | None = None
    budget: str | None = None


ALLOWED = BudgetDecision(True)


class BudgetExceeded(Exception):
    """Raised by an instrumented client (``enforce_budgets=True``) instead of sending a request
    a hard budget forbids; ``decision`` says which budget and what it has left."""

    def __init__(self, decision: BudgetDecision) -> None:
        super().__init__(
            f"budget {decision.budget!r} is used up for this period "
            f"(remaining ${decision.remaining}): the call was not made"
        )
        self.decision = decision


def check_budget(
    user_id: str | None = None,
    feature: str | None = None,
    customer_id: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    **tags: object,
) -> BudgetDecision:
    """Whether a call with this attribution may be made now. What is not given comes from the
    ``tracking.attribute`` block in force (user, feature, tags). Never raises because of
    tracking: a failure of its own allows the call (and is counted in ``stats()``), as does an
    id that is not text (rejected, with a message, like a bad ``record``)."""
    tracker = _client.get()
    if tracker is None:
        return ALLOWED
    try:
        attribution = context.current()
        found: Mapping[str, object] = tags
        if attribution.tags:
            found = {**attribution.tags, **tags} if tags else attribution.tags
        guard = tracker.budgets or tracker.budget_guard()
        return guard.check(
            attribution.user_id if user_id is None else user_id,
            attribution.feature if feature is None else feature,
            customer_id,
            model,
            provider,
            found,
        )
    except Exception as exc:
        given = {"user_id": user_id, "feature": feature, "customer_id": customer_id}
        given |= {"model": model, "provider": provider}
        bad = [(k, v) for k, v in given.items() if v is not None and not isinstance(v, str)]
        if bad:  # an unhashable id fails the look-up: the caller's mistake, said as such
            name, value = bad[0]
            tracker.reject(ValueError(f"{name} must be text in check_budget, got {value!r}"))
        else:
            tracker.internal_error(exc)
        return ALLOWED


def refresh_budgets() -> bool:
    """Load the budgets and their spend now, on this thread (I/O: for start-up, or a test);
    the background thread does it every ``budget_refresh_interval``. True if it loaded."""
    tracker = _client.get()
    return False if tracker is None else tracker.budget_guard().refresh()

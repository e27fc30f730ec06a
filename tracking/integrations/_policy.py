"""What an instrumented client does before sending a request: with ``enforce_budgets``, ask
``check_budget`` and refuse (``BudgetExceeded``) what a hard budget forbids."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tracking.budget_check import BudgetExceeded, check_budget


@dataclass
class Policy:
    """What an instrumented client does besides logging, shared by its wrapped methods: a later
    ``instrument(client, enforce_budgets=True)`` turns enforcement on for all of them."""

    enforce_budgets: bool = False


def enforce(policy: Policy, provider: str, kwargs: Mapping[str, Any]) -> None:
    """Raise BudgetExceeded, before anything is sent, when a hard budget forbids the call
    (the attribution in force, the request's model)."""
    if not policy.enforce_budgets:
        return
    model = kwargs.get("model")
    decision = check_budget(model=model if isinstance(model, str) else None, provider=provider)
    if not decision.allowed:
        raise BudgetExceeded(decision)

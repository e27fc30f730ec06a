"""The budgets as the host's process sees them between two loads: each budget with its period,
limit and the spend the store reported, indexed so that finding the budgets a call falls under
costs a few dict look-ups, not a loop over every budget.

Pure: built from what :mod:`tracking.budget_load` read, it does no I/O. Its matching is the
store's (:mod:`tracking.budget_store`): a budget applies when every key of its scope equals the
call's value; a customer is the one ``customer_users`` maps the user to; a tag matches as
:func:`tracking.tag_match.tag_equals` does (``n=1`` is the number 1 or the text "1").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any

from tracking.budget_periods import Period
from tracking.budget_store import Budget
from tracking.tag_match import json_number

# the scope keys matched by equality, in the order of ``Attribution.key``
KEYS = ("user_id", "customer_id", "feature", "provider", "model")


@dataclass(frozen=True)
class Entry:
    """One budget in its period at load time: ``spent`` is what the store had for it."""

    budget: Budget
    period: Period
    limit: Decimal
    spent: Decimal
    # the period's bounds as POSIX times (cheap to compare), and where the process's own
    # additions to this budget in this period are kept
    start_ts: float = field(init=False)
    end_ts: float = field(init=False)
    key: str = field(init=False)
    left: Decimal = field(init=False)  # limit - spent, before this process's additions

    def __post_init__(self) -> None:
        object.__setattr__(self, "left", self.limit - self.spent)
        object.__setattr__(self, "start_ts", self.period.start.timestamp())
        object.__setattr__(self, "end_ts", self.period.end.timestamp())
        object.__setattr__(self, "key", addition_key(self.budget.name, self.period.start))


def addition_key(budget: str, period_start: datetime) -> str:
    """The key of a budget's period among the process's additions: a string, whose hash Python
    keeps, so a check's look-up does not hash a tuple and a datetime each time."""
    return f"{period_start.isoformat()} {budget}"


def tag_matches(text: str, value: object) -> bool:
    """Whether a call's tag ``value`` (a JSON value) is what a budget's ``text`` spells."""
    if isinstance(value, str):
        return value == text
    if isinstance(value, bool):
        return text.strip().lower() == ("true" if value else "false")
    if isinstance(value, int | float):
        number = json_number(text.strip())
        return number is not None and Decimal(repr(value)) == number
    return False


def _everything(given: tuple[str | None, ...]) -> tuple[()]:
    return ()


class Group:
    """The budgets with the same scope keys, by the values of those keys: ``values_of`` picks
    a call's values of those keys, as the budgets' are stored in ``by_values``."""

    __slots__ = ("by_values", "tag_key", "values_of")

    def __init__(self, indexes: tuple[int, ...], tag_key: str | None) -> None:
        self.values_of: Callable[[tuple[str | None, ...]], Any] = (
            itemgetter(*indexes) if indexes else _everything
        )
        self.tag_key = tag_key
        self.by_values: dict[Any, list[Entry]] = {}


def _values(budget: Budget, indexes: tuple[int, ...]) -> Any:
    values = tuple(getattr(budget, KEYS[i]) for i in indexes)
    return values[0] if len(values) == 1 else values  # as itemgetter gives them


class BudgetView:
    """The loaded budgets and the user -> customer map; ``loaded`` False before the first load
    (every call is then allowed)."""

    def __init__(
        self, entries: Iterable[Entry] = (), customers: Mapping[str, str] | None = None
    ) -> None:
        self.entries = tuple(entries)
        self.customers = dict(customers or {})
        self.loaded = customers is not None
        groups: dict[tuple[tuple[int, ...], str | None], Group] = {}
        for entry in self.entries:
            b = entry.budget
            indexes = tuple(i for i, k in enumerate(KEYS) if getattr(b, k) is not None)
            group = groups.get((indexes, b.tag_key))
            if group is None:
                groups[(indexes, b.tag_key)] = group = Group(indexes, b.tag_key)
            group.by_values.setdefault(_values(b, indexes), []).append(entry)
        self.groups = tuple(groups.values())
        self.has_customers = any(e.budget.customer_id is not None for e in self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def matching(
        self, given: tuple[str | None, ...], tags: Mapping[str, object]
    ) -> Iterator[Entry]:
        """The budgets a call falls under: ``given`` its values of ``KEYS`` (the customer
        already resolved, see :meth:`customer_of`), ``tags`` its tags."""
        for group in self.groups:
            found = group.by_values.get(group.values_of(given))
            if not found:
                continue
            if group.tag_key is None:
                yield from found
                continue
            value = tags.get(group.tag_key)
            if value is not None:
                for entry in found:
                    if tag_matches(entry.budget.tag_value or "", value):
                        yield entry

    def customer_of(self, customer_id: str | None, user_id: str | None) -> str | None:
        """The call's customer: the one given, else the user's (when any budget needs it)."""
        if customer_id is not None or not self.has_customers or user_id is None:
            return customer_id
        return self.customers.get(user_id)

"""What a reprice selects and what it would change: the selection as SQL conditions, and the
before/after totals by model and by day, summed from the calls in integer nano-dollars."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, or_

from tracking.schema import calls
from tracking.sqltypes import from_nanos


@dataclass(frozen=True)
class Selection:
    """The calls a reprice looks at: of a provider and models (all when empty) in the UTC days
    ``[start, end]``, or only the unpriced ones. Provider-reported costs are never selected."""

    provider: str | None = None
    models: tuple[str, ...] = ()
    start: date | None = None
    end: date | None = None
    unpriced_only: bool = False

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"--from {self.start} is after --to {self.end}")
        if self.unpriced_only and self.models:
            raise ValueError(
                "--unpriced reprices every unpriced call: give it no --model "
                "(or leave --unpriced out to reprice the models given)"
            )

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE of the selection, on ``calls``."""
        found: list[ColumnElement[bool]] = [
            or_(calls.c.cost_source.is_(None), calls.c.cost_source != "provider")
        ]
        if self.provider is not None:
            found.append(calls.c.provider == self.provider)
        if self.models:
            found.append(calls.c.model.in_(self.models))
        if self.start is not None:
            found.append(calls.c.occurred_at >= datetime.combine(self.start, time(), UTC))
        if self.end is not None:
            after = self.end + timedelta(days=1)
            found.append(calls.c.occurred_at < datetime.combine(after, time(), UTC))
        if self.unpriced_only:
            found.append(calls.c.cost_usd.is_(None))
        return found

    def describe(self) -> str:
        """The selection in one line: the audit log's key and the preview's title."""
        parts = [f"provider={self.provider or '*'}"]
        parts.append(f"models={','.join(self.models) or '*'}")
        parts.append(f"from={self.start or '*'} to={self.end or '*'}")
        if self.unpriced_only:
            parts.append("unpriced only")
        return " ".join(parts)


# A group of calls summed: [calls, unpriced before, nano-dollars before, unpriced after,
# nano-dollars after] (a list: a reprice adds every call it reads to one in place).
Sums = list[int]


@dataclass(slots=True)
class Totals:
    """Calls, unpriced calls and their exact cost (integer nano-dollars: sums stay exact)."""

    calls: int = 0
    unpriced: int = 0
    nanos: int = 0

    def add_sums(self, calls: int, unpriced: int, nanos: int) -> None:
        """Add many calls at once: their number, how many are unpriced, the others' cost."""
        self.calls += calls
        self.unpriced += unpriced
        self.nanos += nanos

    @property
    def cost(self) -> Decimal:
        return from_nanos(self.nanos)

    def to_json(self) -> dict[str, Any]:
        """For the audit log: the cost as a decimal string, never a float."""
        cost = f"{self.cost:f}"  # "0.000000000", not "0E-9"
        return {"calls": self.calls, "unpriced_calls": self.unpriced, "cost_usd": cost}


@dataclass(slots=True)
class Change:
    """One group's totals before and after the reprice."""

    before: Totals = field(default_factory=Totals)
    after: Totals = field(default_factory=Totals)

    def add_sums(self, sums: Sums) -> None:
        calls, unpriced_before, nanos_before, unpriced_after, nanos_after = sums
        self.before.add_sums(calls, unpriced_before, nanos_before)
        self.after.add_sums(calls, unpriced_after, nanos_after)


@dataclass
class Preview:
    """The before/after totals of the selected calls, overall, by model and by day, and how many
    of them the reprice changes (a new cost or a new price version)."""

    selection: Selection
    total: Change = field(default_factory=Change)
    by_model: dict[tuple[str, str], Change] = field(default_factory=dict)
    by_day: dict[date, Change] = field(default_factory=dict)
    changed: int = 0

    def add_sums(self, provider: str, model: str, day: date, sums: Sums) -> None:
        """Add a group of calls of one model and day at once (see ``Sums``)."""
        self.total.add_sums(sums)
        self.by_model.setdefault((provider, model), Change()).add_sums(sums)
        self.by_day.setdefault(day, Change()).add_sums(sums)

    @property
    def selected(self) -> int:
        return self.total.before.calls

    def audit_json(self, after: bool) -> dict[str, Any]:
        """The totals before (or after) as the audit log keeps them: overall and by model."""

        def side(change: Change) -> dict[str, Any]:
            return (change.after if after else change.before).to_json()

        return {
            "total": side(self.total),
            "by_model": {f"{p}/{m}": side(c) for (p, m), c in sorted(self.by_model.items())},
        }

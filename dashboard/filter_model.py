"""What the pages narrow the data to, and how those filters read over any table's columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.sql import ColumnElement


@dataclass(frozen=True)
class Filters:
    """What the sidebar (and the Costs page) narrows the data to. Empty tuples mean "all"."""

    start: date
    end: date  # inclusive
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = field(default=())  # (key, value): raw calls only

    def with_dates(self, start: date, end: date) -> Filters:
        return Filters(
            start, end, self.providers, self.models, self.features, self.users, self.tags
        )


PROJECTION_DAYS = 15  # complete days before today the month-end projection looks at


def today() -> date:
    return datetime.now(UTC).date()


def frame_window(f: Filters, now: date) -> tuple[date, date]:
    """The days one ``day_frame`` read covers for a page: the date range, plus this month and
    the days the projection needs, so the Overview's calendar figures come from the same read."""
    start = min(f.start, now.replace(day=1), now - timedelta(days=PROJECTION_DAYS))
    return start, max(f.end, now)


_FILTERED = (
    ("providers", "provider"),
    ("models", "model"),
    ("features", "feature"),
    ("users", "user_id"),
)


def filtered(f: Filters) -> dict[str, tuple[str, ...]]:
    """{column: values} of the provider, model, feature and user filters that are set."""
    return {column: getattr(f, name) for name, column in _FILTERED if getattr(f, name)}


def dimensions(f: Filters, cols: Any) -> list[ColumnElement[bool]]:
    """The provider, model, feature and user filters, over a rollup's or the calls' columns."""
    return [cols[column].in_(values) for column, values in filtered(f).items()]

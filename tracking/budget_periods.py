"""Budget periods: calendar days, ISO weeks and months in an IANA timezone, as UTC instants.

Pure (the standard library's ``zoneinfo`` only). A period starts at the local calendar
boundary, midnight local time of its first day (the Monday of an ISO week, the 1st of a month),
never at the first call after it, and ends where the next period starts: a local day is 23 or 25
hours long across a DST change, and a week or month containing one is an hour shorter or
longer. Where a zone moves its clocks at midnight, the day starts at the first instant whose
local date is that day (America/Santiago skips 00:00 to 01:00 in September and repeats
23:00-24:00 of the day before in April).

Spend of a period and the UTC-day rollups
-----------------------------------------
The rollups hold whole UTC days. A period of a UTC budget is made of whole UTC days, so its
spend is read from the rollups alone. A period of any other timezone begins and ends inside a
UTC day (Europe/Berlin's March 2026 is 2026-02-28 23:00 UTC to 2026-03-31 22:00 UTC), and no
rule of counting or skipping a rollup day is exact. So the rule is: **the UTC days that lie
wholly inside the period come from the rollups, and the two partial UTC days at its edges from
the raw calls, [start, first whole day) and [last whole day's end, end)** — exact to the
instant, and the raw read is at most two days of the scope's calls, however long the period.
A period shorter than a whole UTC day (a day budget outside UTC) is read from the raw calls of
its [start, end) alone. :func:`split_days` gives both parts. (Only a budget scoped to a tag
reads every call of its period: the rollups carry no tags.)

A consequence: a non-UTC budget's edge hours need the raw calls still to be there. Retention
removes whole UTC months, so ``retention --keep-months 1`` would remove the first hours of a
period east of UTC early in the next UTC month; keep two months at least.

Rollover
--------
With rollover, a period's limit is the budget's limit plus what the previous period left
unspent of the budget's limit: ``limit + max(0, limit - previous_spent)``, so at most one
period's unspent budget is carried (an unspent carry is never carried on) and an overspent
previous period does not lower the next one's limit (:func:`rolled_limit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERIOD_KINDS = ("day", "week", "month")
_DAY = timedelta(days=1)


def check_period(kind: str) -> str:
    """The period kind, or ValueError naming the kinds there are."""
    if kind not in PERIOD_KINDS:
        raise ValueError(f"period must be one of {', '.join(PERIOD_KINDS)}, got {kind!r}")
    return kind


# files of a zoneinfo directory that are not zone names: "localtime" is whatever the machine is
# set to, so two processes could disagree on where a period starts
_NOT_ZONES = frozenset({"localtime", "posixrules", "leapseconds", "tzdata.zi", "zone.tab"})


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_timezone(name: str) -> ZoneInfo:
    """The IANA timezone ``name`` ("Europe/Berlin", "UTC"), or ValueError saying it is unknown.

    Only names of the IANA database: no offsets ("+01:00"), abbreviations that are not zone
    names, paths or blank text.
    """
    if (
        not isinstance(name, str)
        or not name.strip()
        or name != name.strip()
        or name in _NOT_ZONES
        or name.startswith(("posix/", "right/"))
    ):
        raise ValueError(f"timezone {name!r} is not an IANA timezone name (e.g. Europe/Berlin)")
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown timezone {name!r}: give an IANA name such as UTC, Europe/Berlin or "
            "America/Los_Angeles"
        ) from None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"moment {moment!r} must be timezone-aware (a UTC datetime)")
    return moment.astimezone(UTC)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (aware, UTC) whose local date in ``zone`` is ``day``: 00:00 local time.

    Where the clocks jump over midnight (00:00 to 01:00) it is the jump's instant: a local time
    that does not exist is read with the offset before the jump (PEP 495, ``fold=0``); a
    midnight that comes twice counts from its first occurrence. Checked for every zone of the
    IANA database (tests/test_budgets.py).
    """
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _first_day(kind: str, day: date) -> date:
    if kind == "day":
        return day
    if kind == "week":
        return day - timedelta(days=day.weekday())  # ISO: Monday
    return day.replace(day=1)


def _following_day(kind: str, first: date) -> date:
    """The first local day of the period after the one starting on ``first``."""
    if kind == "day":
        return first + _DAY
    if kind == "week":
        return first + timedelta(days=7)
    return date(first.year + 1, 1, 1) if first.month == 12 else first.replace(month=first.month + 1)


def _preceding_day(kind: str, first: date) -> date:
    """The first local day of the period before the one starting on ``first``."""
    return _first_day(kind, first - _DAY)


def _label(kind: str, first: date) -> str:
    if kind == "day":
        return first.isoformat()
    if kind == "week":
        year, week, _ = first.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{first:%Y-%m}"


@dataclass(frozen=True)
class Period:
    """One calendar period of a budget: ``start`` <= an instant < ``end``, both aware UTC.

    ``first_day`` and ``last_day`` are the local calendar days it covers; ``label`` names it
    in the local calendar: "2026-03-29", "2026-W53" (ISO week), "2026-03".
    """

    kind: str
    timezone: str
    first_day: date
    last_day: date
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return _label(self.kind, self.first_day)

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= _utc(moment) < self.end

    def previous(self) -> Period:
        return _starting(self.kind, self.timezone, _preceding_day(self.kind, self.first_day))

    def next(self) -> Period:
        return _starting(self.kind, self.timezone, _following_day(self.kind, self.first_day))


def _starting(kind: str, timezone: str, first: date) -> Period:
    zone = check_timezone(timezone)
    following = _following_day(kind, first)
    return Period(
        kind=kind,
        timezone=timezone,
        first_day=first,
        last_day=following - _DAY,
        start=local_midnight(first, zone),
        end=local_midnight(following, zone),
    )


def period_at(kind: str, timezone: str, moment: datetime) -> Period:
    """The period of ``kind`` in ``timezone`` that holds ``moment`` (an aware datetime)."""
    check_period(kind)
    zone = check_timezone(timezone)
    instant = _utc(moment)
    period = _starting(kind, timezone, _first_day(kind, instant.astimezone(zone).date()))
    # never taken with today's IANA data (the tests scan every zone); a zone that set its clocks
    # back across midnight would show a local date again after its next period had started
    while instant < period.start:
        period = period.previous()
    while instant >= period.end:
        period = period.next()
    return period


def previous_period(kind: str, timezone: str, moment: datetime) -> Period:
    return period_at(kind, timezone, moment).previous()


def next_period(kind: str, timezone: str, moment: datetime) -> Period:
    return period_at(kind, timezone, moment).next()


def utc_days(period: Period) -> list[date]:
    """Every UTC date the period touches, even by a minute: the rollup days it overlaps."""
    first = period.start.date()
    last = (period.end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass(frozen=True)
class DaySplit:
    """A period as the UTC days wholly inside it (read from the rollups) and the ranges of
    instants outside those days (read from the raw calls): together exactly [start, end)."""

    whole_days: tuple[date, ...]
    raw_ranges: tuple[tuple[datetime, datetime], ...]


def split_days(period: Period) -> DaySplit:
    """The rollup days and raw-call ranges that make up ``period`` exactly (see the module's
    docstring for the rule). A UTC budget's period has no raw ranges."""
    start, end = period.start, period.end
    at_midnight = start == datetime.combine(start.date(), time(), UTC)
    first_whole = start.date() if at_midnight else start.date() + _DAY
    end_whole = end.date()  # the whole days end at this day's 00:00 UTC
    if first_whole >= end_whole:
        return DaySplit((), ((start, end),))
    days = tuple(first_whole + timedelta(days=i) for i in range((end_whole - first_whole).days))
    ranges = []
    whole_start = datetime.combine(first_whole, time(), UTC)
    whole_end = datetime.combine(end_whole, time(), UTC)
    if start < whole_start:
        ranges.append((start, whole_start))
    if whole_end < end:
        ranges.append((whole_end, end))
    return DaySplit(days, tuple(ranges))


def rolled_limit(limit: Decimal, previous_spent: Decimal | None) -> Decimal:
    """A rollover budget's limit for a period: ``limit`` plus what the previous period left
    unspent of ``limit`` (never less than ``limit``: an overspent period carries nothing).
    ``previous_spent`` None: there is no previous period to carry from (the budget is new)."""
    if previous_spent is None:
        return limit
    return limit + max(Decimal(0), limit - previous_spent)

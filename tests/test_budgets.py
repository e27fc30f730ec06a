"""Budgets: calendar periods in IANA timezones, rollover, the budgets table (add, list, remove,
audited, every refusal), a budget's exact spend with its unpriced calls, and the CLI."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from tracking.budget_periods import (
    check_timezone,
    local_midnight,
    next_period,
    period_at,
    previous_period,
    rolled_limit,
    split_days,
    utc_days,
)
from tracking.budget_store import (
    Budget,
    BudgetError,
    add_budget,
    get_budget,
    limit_in,
    list_budgets,
    remove_budget,
    spent,
    spent_in,
    status,
    validate_budget,
)
from tracking.cli import main
from tracking.events import CallEvent
from tracking.schema import audit_log, budgets, calls, customer_users
from tracking.store import write_batch

ROOT = Path(__file__).resolve().parent.parent


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- periods ----------------------------------------------------------------------------------


def test_a_berlin_day_is_23_hours_in_march_and_25_in_october() -> None:
    spring = period_at("day", "Europe/Berlin", utc(2026, 3, 29, 12))
    assert (spring.start, spring.end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert spring.length == timedelta(hours=23) and spring.label == "2026-03-29"
    assert spring.next().length == timedelta(hours=24)
    assert spring.previous().length == timedelta(hours=24)
    autumn = period_at("day", "Europe/Berlin", utc(2026, 10, 25, 12))
    assert (autumn.start, autumn.end) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert autumn.length == timedelta(hours=25)
    # the boundary is midnight local time, to the microsecond
    just_before = utc(2026, 3, 28, 23) - timedelta(microseconds=1)
    assert period_at("day", "Europe/Berlin", just_before).label == "2026-03-28"
    assert period_at("day", "Europe/Berlin", utc(2026, 3, 28, 23)).label == "2026-03-29"
    # the hour that comes twice in October belongs to the 25th both times
    for minute in (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)):
        assert period_at("day", "Europe/Berlin", minute).label == "2026-10-25"


def test_berlin_weeks_and_months_across_the_dst_changes() -> None:
    week = period_at("week", "Europe/Berlin", utc(2026, 3, 25))
    assert week.label == "2026-W13" and week.first_day == date(2026, 3, 23)
    assert (week.start, week.end) == (utc(2026, 3, 22, 23), utc(2026, 3, 29, 22))
    assert week.length == timedelta(days=7, hours=-1)
    march = period_at("month", "Europe/Berlin", utc(2026, 3, 15))
    assert (march.start, march.end) == (utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))
    assert march.label == "2026-03" and march.last_day == date(2026, 3, 31)
    october = period_at("month", "Europe/Berlin", utc(2026, 10, 15))
    assert (october.start, october.end) == (utc(2026, 9, 30, 22), utc(2026, 10, 31, 23))
    assert october.length == timedelta(days=31, hours=1)
    # an instant that is still February in UTC is March in Berlin
    assert period_at("month", "Europe/Berlin", utc(2026, 2, 28, 23, 30)).label == "2026-03"
    assert period_at("month", "UTC", utc(2026, 2, 28, 23, 30)).label == "2026-02"


def test_los_angeles_periods_start_at_its_midnight() -> None:
    spring = period_at("day", "America/Los_Angeles", utc(2026, 3, 8, 20))
    assert (spring.start, spring.end) == (utc(2026, 3, 8, 8), utc(2026, 3, 9, 7))
    autumn = period_at("day", "America/Los_Angeles", utc(2026, 11, 1, 20))
    assert (autumn.start, autumn.end) == (utc(2026, 11, 1, 7), utc(2026, 11, 2, 8))
    # 2026-03-01 07:30 UTC is 23:30 on 28 February in Los Angeles
    assert period_at("month", "America/Los_Angeles", utc(2026, 3, 1, 7, 30)).label == "2026-02"
    march = period_at("month", "America/Los_Angeles", utc(2026, 3, 1, 8))
    assert (march.start, march.end) == (utc(2026, 3, 1, 8), utc(2026, 4, 1, 7))
    week = period_at("week", "America/Los_Angeles", utc(2026, 11, 2, 7, 59))
    assert week.label == "2026-W44" and week.end == utc(2026, 11, 2, 8)


def test_an_iso_week_across_a_year_end() -> None:
    for moment in (utc(2026, 12, 28), utc(2026, 12, 31, 12), utc(2027, 1, 3, 23, 59)):
        week = period_at("week", "UTC", moment)
        assert week.label == "2026-W53"
        assert (week.first_day, week.last_day) == (date(2026, 12, 28), date(2027, 1, 3))
        assert (week.start, week.end) == (utc(2026, 12, 28), utc(2027, 1, 4))
    assert next_period("week", "UTC", utc(2026, 12, 30)).label == "2027-W01"
    assert previous_period("week", "UTC", utc(2026, 12, 30)).first_day == date(2026, 12, 21)
    assert period_at("week", "Europe/Berlin", utc(2027, 1, 3, 22, 59)).label == "2026-W53"
    berlin = period_at("week", "Europe/Berlin", utc(2027, 1, 3, 23))
    assert berlin.label == "2027-W01" and berlin.start == utc(2027, 1, 3, 23)
    assert berlin.previous().label == "2026-W53"
    assert len(utc_days(period_at("week", "UTC", utc(2026, 12, 29)))) == 7
    assert len(utc_days(berlin.previous())) == 8  # Sunday 23:00 UTC to Sunday 23:00 UTC


def test_month_ends_and_leap_february() -> None:
    january = period_at("month", "UTC", utc(2026, 1, 31, 23, 59, 59))
    assert january.label == "2026-01"
    february = january.next()
    assert (february.first_day, february.last_day) == (date(2026, 2, 1), date(2026, 2, 28))
    assert (february.start, february.end) == (utc(2026, 2, 1), utc(2026, 3, 1))
    leap = period_at("month", "UTC", utc(2028, 2, 10)).next().previous()
    assert leap.last_day == date(2028, 2, 29) and leap.end == utc(2028, 3, 1)
    assert period_at("day", "UTC", utc(2028, 2, 29, 12)).next().first_day == date(2028, 3, 1)
    december = period_at("month", "Europe/Berlin", utc(2026, 12, 15))
    assert december.next().label == "2027-01" and december.next().start == utc(2026, 12, 31, 23)
    assert period_at("month", "UTC", utc(2027, 1, 5)).previous().label == "2026-12"


def test_periods_tile_time_and_start_at_local_midnight() -> None:
    """Random instants over three years in several zones: each lies in its period, periods
    follow one another without gap or overlap, and each starts at 00:00 local on its first
    day (on a Monday for a week, the 1st for a month)."""
    rng = random.Random(11)
    zones = ("UTC", "Europe/Berlin", "America/Los_Angeles", "Australia/Lord_Howe", "Asia/Kolkata")
    for _ in range(600):
        moment = utc(2026, 1, 1) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
        name, kind = rng.choice(zones), rng.choice(("day", "week", "month"))
        zone = ZoneInfo(name)
        p = period_at(kind, name, moment)
        assert p.start <= moment < p.end and moment in p
        assert p.next().start == p.end and p.previous().end == p.start
        local = p.start.astimezone(zone)
        assert (local.date(), local.time()) == (p.first_day, time())
        assert (p.end - timedelta(microseconds=1)).astimezone(zone).date() == p.last_day
        if kind == "week":
            assert p.first_day.weekday() == 0 and (p.last_day - p.first_day).days == 6
        if kind == "month":
            assert p.first_day.day == 1 and (p.last_day + timedelta(days=1)).day == 1
        assert p.start.tzinfo is UTC and p.end.tzinfo is UTC


def test_a_zone_that_changes_its_clocks_at_midnight() -> None:
    """America/Santiago skips 00:00-01:00 on 6 September 2026 and repeats 23:00-24:00 on
    4 April: the day starts when the local date turns."""
    skipped = period_at("day", "America/Santiago", utc(2026, 9, 6, 12))
    assert skipped.start == utc(2026, 9, 6, 4) and skipped.length == timedelta(hours=23)
    assert skipped.previous().end == skipped.start
    repeated = period_at("day", "America/Santiago", utc(2026, 4, 5, 3, 30))
    assert repeated.label == "2026-04-04" and repeated.end == utc(2026, 4, 5, 4)
    assert repeated.length == timedelta(hours=25)
    assert local_midnight(date(2026, 4, 5), ZoneInfo("America/Santiago")) == utc(2026, 4, 5, 4)


def test_every_zone_starts_its_days_at_their_first_instant() -> None:
    """For every IANA zone, around each of its clock changes from 2020 to 2030: a day starts at
    the first instant whose local date is that day, neither later nor earlier."""
    from zoneinfo import available_timezones

    seen = 0
    for name in sorted(available_timezones() - {"localtime"}):
        if name.startswith(("posix/", "right/")):
            continue
        zone = ZoneInfo(name)
        instant, end = utc(2020, 1, 1), utc(2031, 1, 1)
        offset = instant.astimezone(zone).utcoffset()
        while instant < end:
            following = instant + timedelta(days=7)
            if following.astimezone(zone).utcoffset() != offset:
                first = instant.astimezone(zone).date()
                for day in (first + timedelta(days=k) for k in range(-1, 9)):
                    start = local_midnight(day, zone)
                    assert start.astimezone(zone).date() == day, (name, day)
                    before = start - timedelta(microseconds=1)
                    assert before.astimezone(zone).date() < day, (name, day)
                    seen += 1
                offset = following.astimezone(zone).utcoffset()
            instant = following
    assert seen > 10_000


def test_split_days_is_the_period_exactly() -> None:
    march = period_at("month", "Europe/Berlin", utc(2026, 3, 10))
    split = split_days(march)
    assert split.whole_days[0] == date(2026, 3, 1) and split.whole_days[-1] == date(2026, 3, 30)
    assert split.raw_ranges == (
        (utc(2026, 2, 28, 23), utc(2026, 3, 1)),
        (utc(2026, 3, 31), utc(2026, 3, 31, 22)),
    )
    assert utc_days(march)[0] == date(2026, 2, 28) and utc_days(march)[-1] == date(2026, 3, 31)
    utc_march = split_days(period_at("month", "UTC", utc(2026, 3, 10)))
    assert utc_march.raw_ranges == () and len(utc_march.whole_days) == 31
    berlin_day = period_at("day", "Europe/Berlin", utc(2026, 3, 10, 12))
    assert split_days(berlin_day).whole_days == ()
    assert split_days(berlin_day).raw_ranges == ((berlin_day.start, berlin_day.end),)
    rng = random.Random(3)
    for _ in range(200):
        moment = utc(2026, 1, 1) + timedelta(seconds=rng.randrange(2 * 365 * 86400))
        p = period_at(rng.choice(("day", "week", "month")), "Asia/Kathmandu", moment)
        s = split_days(p)
        covered = len(s.whole_days) * timedelta(days=1) + sum(
            (hi - lo for lo, hi in s.raw_ranges), timedelta()
        )
        assert covered == p.length
        for d in s.whole_days:
            assert p.start <= datetime.combine(d, time(), UTC)
            assert datetime.combine(d + timedelta(days=1), time(), UTC) <= p.end


def test_rollover_carries_one_period_of_unspent_budget_never_less() -> None:
    hundred = Decimal("100")
    assert rolled_limit(hundred, Decimal("30.5")) == Decimal("169.5")
    assert rolled_limit(hundred, Decimal("0")) == Decimal("200")  # never more than one period
    assert rolled_limit(hundred, Decimal("100")) == hundred
    assert rolled_limit(hundred, Decimal("250")) == hundred  # an overspend is not carried
    assert rolled_limit(hundred, None) == hundred


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "europe/berlin", "+01:00", "", " UTC", "localtime", "Europe", "../x"]
)
def test_unknown_timezones_are_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match="timezone") as caught:
        check_timezone(name)
    assert repr(name) in str(caught.value)


def test_known_timezones_and_naive_moments() -> None:
    assert str(check_timezone("Europe/Berlin")) == "Europe/Berlin"
    assert str(check_timezone("UTC")) == "UTC"
    with pytest.raises(ValueError, match="timezone-aware"):
        period_at("day", "UTC", datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="period must be one of day, week, month"):
        period_at("year", "UTC", utc(2026, 3, 1))


# --- the budgets table ------------------------------------------------------------------------


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(budgets)).scalar_one(),
            conn.execute(select(func.count()).select_from(audit_log)).scalar_one(),
        )


FULL = Budget(
    name="growth team",
    limit_usd=Decimal("12.5"),
    period="week",
    timezone="Europe/Berlin",
    user_id="u1",
    customer_id="c1",
    feature="chat",
    provider="openai",
    model="gpt-4o",
    tag_key="team",
    tag_value="growth",
    thresholds=(25, 75, 100, 150),
    hard=True,
    rollover=True,
)


def test_add_list_remove_with_audit_rows(engine: Engine) -> None:
    when = utc(2026, 3, 1, 9)
    with engine.begin() as conn:
        stored = add_budget(conn, FULL, who="alice", now=when)
        add_budget(conn, Budget("all", Decimal("1000")), who="bob")
    assert stored == FULL and stored.created_by == "alice" and stored.created_at == when
    with engine.connect() as conn:
        found = list_budgets(conn)
        assert [b.name for b in found] == ["all", "growth team"]
        assert found[1] == FULL and found[1].created_at == when and found[1].created_by == "alice"
        assert isinstance(found[1].limit_usd, Decimal) and found[1].thresholds == (25, 75, 100, 150)
        plain = found[0]
        assert (plain.period, plain.timezone, plain.thresholds) == ("month", "UTC", (50, 80, 100))
        assert (plain.hard, plain.rollover, plain.scope) == (False, False, {})
        row = conn.execute(select(audit_log).order_by(audit_log.c.id)).first()
    assert row is not None
    assert (row.who, row.action, row.table_name, row.key) == (
        "alice",
        "add",
        "budgets",
        "growth team",
    )
    assert row.before is None
    assert row.after == {
        "name": "growth team",
        "limit_usd": "12.5",
        "period": "week",
        "timezone": "Europe/Berlin",
        "user_id": "u1",
        "customer_id": "c1",
        "feature": "chat",
        "provider": "openai",
        "model": "gpt-4o",
        "tag_key": "team",
        "tag_value": "growth",
        "thresholds": [25, 75, 100, 150],
        "hard": True,
        "rollover": True,
        "created_at": "2026-03-01T09:00:00+00:00",
        "created_by": "alice",
    }
    with engine.begin() as conn:
        gone = remove_budget(conn, "growth team", who="carol")
    assert gone == FULL
    with engine.connect() as conn:
        assert [b.name for b in list_budgets(conn)] == ["all"]
        assert get_budget(conn, "growth team") is None
        last = conn.execute(select(audit_log).order_by(audit_log.c.id.desc())).first()
    assert last is not None
    assert (last.who, last.action, last.key, last.after) == ("carol", "remove", "growth team", None)
    assert last.before["limit_usd"] == "12.5" and last.before["tag_value"] == "growth"
    assert counts(engine) == (1, 3)


def test_a_failed_transaction_keeps_neither_the_budget_nor_its_audit_row(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        add_budget(conn, FULL, who="alice")
        raise RuntimeError("the caller's transaction fails")
    assert counts(engine) == (0, 0)


def _with(**changes: object) -> Budget:
    values = {f: getattr(FULL, f) for f in FULL.__dataclass_fields__}
    values.update(changes)
    return Budget(**values)  # type: ignore[arg-type]


REFUSED = [
    (_with(name=""), "name"),
    (_with(name="  "), "name"),
    (_with(name=" padded"), "name"),
    (_with(period="year"), "period"),
    (_with(period="Month"), "period"),
    (_with(timezone="Mars/Olympus"), "timezone"),
    (_with(timezone="CET+1"), "timezone"),
    (_with(limit_usd=Decimal("-0.01")), "limit_usd"),
    (_with(limit_usd=Decimal("NaN")), "limit_usd"),
    (_with(limit_usd=Decimal("Infinity")), "limit_usd"),
    (_with(limit_usd=float("inf")), "limit_usd"),
    (_with(limit_usd="ten"), "limit_usd"),
    (_with(limit_usd=Decimal("1e11")), "limit_usd"),
    (_with(limit_usd=Decimal("0.0000000001")), "limit_usd"),
    (_with(thresholds=(0, 50)), "thresholds"),
    (_with(thresholds=(50, 1001)), "thresholds"),
    (_with(thresholds=(80, 50)), "thresholds"),
    (_with(thresholds=(50, 50)), "thresholds"),
    (_with(thresholds=(50.5,)), "thresholds"),
    (_with(thresholds=(True,)), "thresholds"),
    (_with(thresholds=()), "thresholds"),
    (_with(user_id=""), "user_id"),
    (_with(customer_id=" "), "customer_id"),
    (_with(feature=""), "feature"),
    (_with(provider=""), "provider"),
    (_with(model="\t"), "model"),
    (_with(tag_key=""), "tag_key"),
    (_with(tag_value=""), "tag_value"),
    (_with(tag_value=None), "tag_key"),
    (_with(tag_key=None), "tag_key"),
    (_with(hard="yes"), "hard"),
]


@pytest.mark.parametrize(("budget", "field"), REFUSED)
def test_every_bad_field_is_refused_and_nothing_written(
    engine: Engine, budget: Budget, field: str
) -> None:
    with pytest.raises(BudgetError) as caught:
        validate_budget(budget)
    assert caught.value.field == field
    with pytest.raises(BudgetError), engine.begin() as conn:
        add_budget(conn, budget, who="alice")
    assert counts(engine) == (0, 0)


def test_duplicates_and_unknown_names_are_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        add_budget(conn, FULL, who="alice")
    with pytest.raises(BudgetError, match="exists already") as caught, engine.begin() as conn:
        add_budget(conn, _with(limit_usd=Decimal(1)), who="bob")
    assert caught.value.field == "name"
    with pytest.raises(BudgetError, match="no budget named"), engine.begin() as conn:
        remove_budget(conn, "nobody's", who="bob")
    assert counts(engine) == (1, 1)
    with engine.connect() as conn:
        assert list_budgets(conn)[0].limit_usd == Decimal("12.5")


def test_a_limit_of_zero_and_the_edges_of_the_thresholds_are_allowed() -> None:
    ok = validate_budget(_with(limit_usd="0", thresholds=["1", 1000]))
    assert ok.limit_usd == Decimal(0) and ok.thresholds == (1, 1000)


def test_the_store_checks_period_limit_and_tag_itself(engine: Engine) -> None:
    """A writer that skips validate_budget still cannot store a bad period, a negative limit
    or half a tag scope."""
    good = {"name": "x", "period": "month", "timezone": "UTC", "limit_usd": Decimal(1),
            "thresholds": [50], "hard": False, "rollover": False,
            "created_at": utc(2026, 1, 1)}  # fmt: skip
    for bad in ({"period": "year"}, {"limit_usd": Decimal(-1)}, {"tag_key": "team"}):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(budgets).values({**good, **bad}))
    with engine.begin() as conn:
        conn.execute(insert(budgets).values(good))
    assert counts(engine) == (1, 0)


def test_migration_0005_adds_the_budgets_table_to_a_0004_store(engine: Engine) -> None:
    from tests.conftest import assert_rollups_equal_the_calls
    from tests.test_store import varied_events
    from tracking.migrate import downgrade, upgrade

    downgrade(engine, "0004")
    try:
        assert "budgets" not in set(inspect(engine).get_table_names())
        with engine.begin() as conn:
            write_batch(conn, varied_events(40))
    finally:
        upgrade(engine)
    assert "budgets" in set(inspect(engine).get_table_names())
    assert_rollups_equal_the_calls(engine)
    checks = {c["name"] for c in inspect(engine).get_check_constraints("budgets")}
    assert {"ck_budgets_period", "ck_budgets_limit_usd", "ck_budgets_tag"} <= checks
    with engine.begin() as conn:
        add_budget(conn, FULL, who="alice")
    assert counts(engine) == (1, 1)


# --- spend ------------------------------------------------------------------------------------

USERS = ("u1", "u2", "u3", "u4", None)
CUSTOMERS = {"u1": "c1", "u2": "c1", "u3": "c2"}  # u4 belongs to nobody
WINDOW = (utc(2026, 2, 26), utc(2026, 4, 3))
# instants at and around the period edges of Berlin, Los Angeles and UTC in March 2026
EDGES = [
    utc(2026, 2, 28, 22, 59, 59, 999999),
    utc(2026, 2, 28, 23),
    utc(2026, 3, 1),
    utc(2026, 3, 1, 7, 59, 59),
    utc(2026, 3, 1, 8),
    utc(2026, 3, 28, 23),
    utc(2026, 3, 29, 21, 59, 59),
    utc(2026, 3, 29, 22),
    utc(2026, 3, 31, 21, 59, 59, 999999),
    utc(2026, 3, 31, 22),
    utc(2026, 4, 1),
    utc(2026, 4, 1, 6, 59, 59),
    utc(2026, 4, 1, 7),
]


def spend_events(n: int = 900, seed: int = 7) -> list[CallEvent]:
    rng = random.Random(seed)
    span = int((WINDOW[1] - WINDOW[0]).total_seconds())
    moments = [WINDOW[0] + timedelta(seconds=rng.randrange(span)) for _ in range(n)]
    moments += EDGES * 3
    tags = [None, {"team": "growth"}, {"team": "search"}, {"team": "growth", "n": 1},
            {"n": "1"}, {"n": 1.5}, {"paid": True}]  # fmt: skip
    events = []
    for moment in moments:
        cost = rng.choice([None, Decimal(rng.randint(0, 3 * 10**9)) / Decimal(10**9)])
        events.append(
            CallEvent(
                id=uuid.uuid4(),
                occurred_at=moment,
                provider=rng.choice(["openai", "anthropic"]),
                model=rng.choice(["gpt-4o", "gpt-4o-mini", "claude-x"]),
                user_id=rng.choice(USERS),
                feature=rng.choice([None, "chat", "search"]),
                status=rng.choice(["ok", "ok", "error"]),
                input_tokens=rng.randint(0, 5000),
                cost_usd=cost,
                tags=rng.choice(tags),
            )
        )
    return events


def load(engine: Engine, events: list[CallEvent]) -> None:
    with engine.begin() as conn:
        write_batch(conn, events)
        conn.execute(
            insert(customer_users), [{"user_id": u, "customer_id": c} for u, c in CUSTOMERS.items()]
        )


def tag_holds(tags: dict | None, key: str, text: str) -> bool:
    """The tag matching rule, written out in Python for the test's own sums."""
    if not tags or key not in tags:
        return False
    value = tags[key]
    if isinstance(value, bool):
        return text.strip().lower() == str(value).lower()
    if isinstance(value, int | float):
        try:
            return Decimal(text.strip()) == Decimal(str(value))
        except ArithmeticError:
            return False
    return value == text


def expected(events: list[CallEvent], b: Budget, start: datetime, end: datetime):
    total, unpriced = Decimal(0), 0
    for e in events:
        if not start <= e.occurred_at < end:
            continue
        if any(
            getattr(b, k) is not None and getattr(e, k) != getattr(b, k)
            for k in ("user_id", "feature", "provider", "model")
        ):
            continue
        if b.customer_id is not None and CUSTOMERS.get(e.user_id or "") != b.customer_id:
            continue
        if b.tag_key is not None and not tag_holds(e.tags, b.tag_key, b.tag_value or ""):
            continue
        if e.cost_usd is None:
            unpriced += 1
        else:
            total += e.cost_usd
    return total, unpriced


SCOPES = [
    {},
    {"user_id": "u1"},
    {"customer_id": "c1"},
    {"customer_id": "c2", "feature": "chat"},
    {"feature": "search"},
    {"provider": "openai", "model": "gpt-4o"},
    {"user_id": "u2", "model": "claude-x"},
    {"tag_key": "team", "tag_value": "growth"},
    {"tag_key": "n", "tag_value": "1"},
    {"tag_key": "paid", "tag_value": "true", "customer_id": "c1"},
    {"user_id": "nobody"},
]
MOMENTS = [
    utc(2026, 3, 1, 12),
    utc(2026, 3, 29, 21),
    utc(2026, 3, 31, 21, 30),
    utc(2026, 2, 28, 23),
]


def test_spent_equals_the_sum_over_the_calls(engine: Engine) -> None:
    events = spend_events()
    load(engine, events)
    checked = 0
    with engine.connect() as conn:
        for scope in SCOPES:
            for zone in ("UTC", "Europe/Berlin", "America/Los_Angeles"):
                for kind in ("day", "week", "month"):
                    b = Budget("b", Decimal(10), period=kind, timezone=zone, **scope)  # type: ignore[arg-type]
                    for now in MOMENTS:
                        got = spent(conn, b, now)
                        p = got.period
                        assert p == period_at(kind, zone, now)
                        want = expected(events, b, p.start, p.end)
                        assert (got.amount, got.unpriced_calls) == want, (scope, zone, kind, now)
                        assert isinstance(got.amount, Decimal)
                        checked += bool(want[0]) + bool(want[1])
    assert checked > 500  # the sums compared are not all zero


def test_spent_of_a_berlin_month_with_its_bounds_written_out(engine: Engine) -> None:
    """Berlin's March 2026 is 2026-02-28 23:00 UTC up to 2026-03-31 22:00 UTC, whatever
    budget_periods computes; and its unpriced calls are counted, not taken as $0."""
    events = spend_events()
    load(engine, events)
    b = Budget("berlin", Decimal(10), period="month", timezone="Europe/Berlin")
    with engine.connect() as conn:
        got = spent(conn, b, utc(2026, 3, 15))
    want = expected(events, b, utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))
    assert (got.amount, got.unpriced_calls) == want and want[1] > 0
    utc_march = expected(events, b, utc(2026, 3, 1), utc(2026, 4, 1))
    assert utc_march != want  # the test can tell the two periods apart


def test_a_utc_budget_reads_the_rollups_and_others_only_the_edge_days(engine: Engine) -> None:
    """With the raw calls of 2026-03-10 deleted (as retention would), a UTC and a Berlin month
    budget both still count that day (from the rollups); a tag budget, which must read the raw
    calls, no longer does."""
    events = spend_events()
    load(engine, events)
    plain = [Budget("utc", Decimal(1)), Budget("berlin", Decimal(1), timezone="Europe/Berlin")]
    tagged = Budget("tag", Decimal(1), tag_key="team", tag_value="growth")
    now = utc(2026, 3, 20)
    with engine.connect() as conn:
        before = [spent(conn, b, now) for b in [*plain, tagged]]
    with engine.begin() as conn:
        gone = conn.execute(
            calls.delete().where(
                calls.c.occurred_at >= utc(2026, 3, 10), calls.c.occurred_at < utc(2026, 3, 11)
            )
        ).rowcount
    assert gone > 0
    with engine.connect() as conn:
        after = [spent(conn, b, now) for b in [*plain, tagged]]
    assert after[:2] == before[:2]
    assert after[2] != before[2]


def test_rollover_in_the_store(engine: Engine) -> None:
    """Previous month's spend 30 of 100 makes this month's limit 170, for a budget that
    existed then; a budget created this month carries nothing."""
    cost = Decimal("30")
    events = [
        CallEvent(id=uuid.uuid4(), occurred_at=utc(2026, 2, 10), provider="openai",
                  model="gpt-4o", cost_usd=cost / 3)
        for _ in range(3)
    ]  # fmt: skip
    events.append(
        CallEvent(id=uuid.uuid4(), occurred_at=utc(2026, 3, 2), provider="openai", model="gpt-4o")
    )
    load(engine, events)
    old = Budget("old", Decimal(100), rollover=True, created_at=utc(2026, 1, 5))
    new = Budget("new", Decimal(100), rollover=True, created_at=utc(2026, 3, 1, 12))
    plain = Budget("plain", Decimal(100), created_at=utc(2026, 1, 5))
    with engine.connect() as conn:
        march = period_at("month", "UTC", utc(2026, 3, 15))
        assert limit_in(conn, old, march) == Decimal(170)
        assert limit_in(conn, new, march) == Decimal(100)
        assert limit_in(conn, plain, march) == Decimal(100)
        assert limit_in(conn, old, march.next()) == Decimal(200)  # March spent nothing priced
        assert limit_in(conn, old, march.previous()) == Decimal(200)  # January: nothing
        s = status(conn, old, utc(2026, 3, 15))
        assert s.spend.amount == 0 and s.spend.unpriced_calls == 1
        assert (s.limit, s.remaining, s.percent_used) == (Decimal(170), Decimal(170), 0)
        feb = status(conn, old, utc(2026, 2, 15))
        assert feb.spend.amount == cost and feb.percent_used == Decimal(15)  # 30 of 200
        assert spent_in(conn, old, march.previous()).amount == cost


def test_the_tag_matching_budgets_and_the_dashboard_share(engine: Engine) -> None:
    """tracking.tag_match (the dashboard's tag filters and budgets' tag scopes) selects the
    calls whose tag holds the value typed, for every kind of typed tag value."""
    from tracking.tag_match import tag_equals

    values = [True, False, "true", "True", 1, 1.5, "1", 0, -0.0, "x", 10**30, "1e999", None]
    events = [
        CallEvent(id=uuid.uuid4(), occurred_at=utc(2026, 3, 2), provider="p", model="m",
                  user_id=str(i), tags={"k": v, "café \"q\"": v})
        for i, v in enumerate(values)
    ]  # fmt: skip
    load(engine, events)
    dialect = engine.dialect.name
    texts = ["true", "True", "false", "1", "1.0", "1.5", "0", "-0", "x", "1e30", "1e999", "NaN"]
    with engine.connect() as conn:
        for key in ("k", 'café "q"'):
            for text in texts:
                ours = tag_equals(calls.c.tags, key, text, dialect)
                got = set(conn.execute(select(calls.c.user_id).where(ours)).scalars())
                assert got == {
                    str(i) for i, v in enumerate(values) if tag_holds({"k": v}, "k", text)
                }, (key, text)


# --- the CLI ----------------------------------------------------------------------------------


def add_args(url: str, *extra: str) -> list[str]:
    return ["budgets", "add", "--url", url, "--name", "team", "--limit", "10", "--period",
            "month", *extra]  # fmt: skip


def test_cli_add_list_remove(
    store_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = add_args(store_url, "--timezone", "Europe/Berlin", "--tag", "team=growth",
                    "--customer", "c1", "--thresholds", "50, 90%,120", "--hard",
                    "--who", "dora")  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Added budget 'team'" in out and "$10 a calendar month in Europe/Berlin" in out
    assert "customer=c1, tag team=growth" in out and "alerts at 50%, 90%, 120%" in out
    with engine.connect() as conn:
        stored = get_budget(conn, "team")
        who = conn.execute(select(audit_log.c.who, audit_log.c.action)).one()
    assert stored is not None and stored.thresholds == (50, 90, 120) and stored.hard
    assert (stored.tag_key, stored.tag_value, stored.customer_id) == ("team", "growth", "c1")
    assert tuple(who) == ("dora", "add")

    # a second budget with spend this month, some of it unpriced
    now = datetime.now(UTC)
    start = period_at("month", "UTC", now).start + timedelta(seconds=1)
    events = [
        CallEvent(id=uuid.uuid4(), occurred_at=start, provider="openai", model="gpt-4o",
                  user_id="u1", cost_usd=c)
        for c in (Decimal("1.25"), Decimal("1.25"), None, None, None)
    ]  # fmt: skip
    with engine.begin() as conn:
        write_batch(conn, events)
    assert main(["budgets", "add", "--url", store_url, "--name", "u1", "--limit", "10",
                 "--period", "month", "--user", "u1"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["budgets", "list", "--url", store_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:6] == ["name", "scope", "period", "limit", "spent", "used"]
    team = next(line for line in lines if line.startswith("team"))
    u1 = next(line for line in lines if line.startswith("u1"))
    assert "$2.5" in u1 and "25.0%" in u1 and "plus 3 calls" in u1 and "soft" in u1
    assert f"{period_at('month', 'UTC', now).label} UTC" in u1
    assert "$0" in team and "0.0%" in team and "hard" in team and "plus" not in team
    assert any("Unknown cost" in line for line in lines)

    assert main(["budgets", "remove", "--url", store_url, "--name", "team"]) == 0
    assert "Removed budget 'team'" in capsys.readouterr().out
    assert main(["budgets", "remove", "--url", store_url, "--name", "team"]) == 2
    assert "--name: no budget named 'team'" in capsys.readouterr().err
    assert main(add_args(store_url, "--user", "u9")) == 0
    assert main(add_args(store_url)) == 2
    assert "--name: a budget named 'team' exists already" in capsys.readouterr().err
    with engine.connect() as conn:
        actions = conn.execute(select(audit_log.c.action).order_by(audit_log.c.id)).scalars()
        assert list(actions) == ["add", "add", "remove", "add"]


BAD_OPTIONS = [
    (["--limit", "-1"], "--limit"),
    (["--limit", "ten"], "--limit"),
    (["--limit", "nan"], "--limit"),
    (["--limit", "Infinity"], "--limit"),
    (["--timezone", "Mars/Olympus"], "--timezone"),
    (["--timezone", "localtime"], "--timezone"),
    (["--thresholds", "0,50"], "--thresholds"),
    (["--thresholds", "50,40"], "--thresholds"),
    (["--thresholds", "50,abc"], "--thresholds"),
    (["--thresholds", "50,,80"], "--thresholds"),
    (["--thresholds", "2000"], "--thresholds"),
    (["--user", ""], "--user"),
    (["--customer", " "], "--customer"),
    (["--feature", ""], "--feature"),
    (["--provider", ""], "--provider"),
    (["--model", ""], "--model"),
    (["--tag", "team"], "--tag"),
    (["--tag", "=growth"], "--tag"),
    (["--tag", "team="], "--tag"),
    (["--tag", "a=b", "--tag", "c=d"], "--tag"),
    (["--name", ""], "--name"),
]


@pytest.mark.parametrize(("extra", "option"), BAD_OPTIONS)
def test_cli_bad_options_exit_2_before_the_store_is_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], option: str
) -> None:
    store = tmp_path / "never" / "made.db"
    assert main(add_args(f"sqlite:///{store}", *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {option}"), err
    assert not store.parent.exists()  # make_engine was never reached


def test_cli_a_bad_period_or_url_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "never" / "made.db"
    argv = add_args(f"sqlite:///{store}")
    argv[argv.index("month")] = "year"
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2 and "--period" in capsys.readouterr().err
    assert main(add_args("not a url")) == 2
    assert "--url" in capsys.readouterr().err
    assert not store.parent.exists()


def test_cli_list_of_an_empty_store(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["budgets", "list", "--url", store_url]) == 0
    assert capsys.readouterr().out.startswith("No budgets in ")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tracking", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def test_cli_as_a_process(store_url: str, engine: Engine, tmp_path: Path) -> None:
    done = run(*add_args(store_url, "--feature", "chat", "--rollover"))
    assert done.returncode == 0, done.stderr
    done = run("budgets", "list", "--url", store_url)
    assert done.returncode == 0, done.stderr
    assert "feature=chat" in done.stdout and "soft, rollover" in done.stdout
    bad = run(*add_args(f"sqlite:///{tmp_path / 'x' / 'y.db'}", "--limit", "-5"))
    assert bad.returncode == 2 and "--limit" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "x").exists()
    bad = run(*add_args(store_url, "--period", "fortnight"))
    assert bad.returncode == 2 and "--period" in bad.stderr
    done = run("budgets", "remove", "--url", store_url, "--name", "team")
    assert done.returncode == 0, done.stderr
    assert counts(engine) == (0, 2)


def test_budget_modules_stay_out_of_import_tracking() -> None:
    code = (
        "import sys, tracking; print(sorted(m for m in sys.modules if m.startswith("
        "('tracking.budget', 'tracking.tag_match'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "[]"

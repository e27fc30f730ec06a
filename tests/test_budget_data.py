"""The Budgets page's reads on both stores: each local day's spend and each past period's spend
and limit equal the sums over the calls written out in Python (tests/test_budgets.py), and a
budget changed through the store keeps its creation and writes an "edit" audit row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import product
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from dashboard.budget_data import budget_row, daily_spend, history, spends_of
from tests.test_budgets import SCOPES, expected, load, spend_events
from tracking.budget_periods import PERIOD_KINDS, period_at, rolled_limit
from tracking.budget_store import (
    Budget,
    BudgetError,
    add_budget,
    change_budget,
    get_budget,
    limit_in,
    spent_in,
)
from tracking.schema import audit_log

NOW = datetime(2026, 3, 31, 21, 30, tzinfo=UTC)  # inside the test calls' window


def test_the_grouped_read_counts_as_spent_in(engine: Engine) -> None:
    """Several periods read at once (one grouped rollup query) equal ``spent_in`` of each, for
    every scope kind, zone and period kind, and the calls summed in Python."""
    events = spend_events()
    load(engine, events)
    checked = 0
    zones = ("UTC", "Europe/Berlin", "America/Los_Angeles")
    with engine.connect() as conn:
        for scope, zone, kind in product(SCOPES, zones, PERIOD_KINDS):
            b = Budget("b", Decimal(10), period=kind, timezone=zone, **scope)  # type: ignore[arg-type]
            current = period_at(kind, zone, NOW)
            periods = [current.previous().previous(), current.previous(), current]
            for got in spends_of(conn, b, periods):
                assert got == spent_in(conn, b, got.period)
                want = expected(events, b, got.period.start, got.period.end)
                assert (got.amount, got.unpriced_calls) == want
                checked += bool(want[0])
    assert checked > 200


def test_each_local_day_spends_what_its_calls_cost(engine: Engine) -> None:
    events = spend_events()
    load(engine, events)
    b = Budget("berlin", Decimal(10), period="week", timezone="Europe/Berlin", feature="search")
    today = NOW.astimezone(ZoneInfo("Europe/Berlin")).date()
    with engine.connect() as conn:
        found = daily_spend(conn, b, today)
    assert list(found) == [today - timedelta(days=28 - i) for i in range(28)]
    zone = ZoneInfo("Europe/Berlin")
    nonzero = 0
    for day, amount in found.items():
        start = datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone)
        assert amount == expected(events, b, start, end.astimezone(UTC))[0]
        nonzero += amount > 0
    assert nonzero > 10


def test_past_periods_carry_rollover_into_their_limits(engine: Engine) -> None:
    events = spend_events()
    load(engine, events)
    current = period_at("week", "UTC", NOW)
    first = current.previous().previous().previous().previous()  # the week before the first shown
    # a limit the partial first week of the calls stays under: the next week's limit carries
    limit = expected(events, Budget("x", Decimal(0)), first.start, first.end)[0] + 1
    b = Budget("weekly", limit, period="week", rollover=True)
    with engine.begin() as conn:
        b = add_budget(conn, b, "test", now=datetime(2020, 1, 1, tzinfo=UTC))
    with engine.connect() as conn:
        past = history(conn, b, NOW, count=4)
        row = budget_row(conn, b, NOW)
    assert past[-1].period == current.previous() and len(past) == 4
    for p in past:
        spent = expected(events, b, p.period.start, p.period.end)
        before = expected(events, b, p.period.previous().start, p.period.previous().end)[0]
        assert (p.spend.amount, p.spend.unpriced_calls) == spent
        assert p.limit == rolled_limit(b.limit_usd, before)
        with engine.connect() as conn:
            assert p.limit == limit_in(conn, b, p.period)
    assert any(p.limit > b.limit_usd for p in past)  # some week left budget to carry
    assert row.status.spend.period == current
    assert row.projection.projected >= row.status.spend.amount


def test_a_change_keeps_the_budget_s_creation_and_is_audited(engine: Engine) -> None:
    made = datetime(2020, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        add_budget(conn, Budget("b", Decimal(5)), "alice", now=made)
        change_budget(conn, Budget("b", Decimal(5)), "bob")  # unchanged: nothing written
        change_budget(conn, Budget("b", Decimal(7), period="day", hard=True), "bob")
    with engine.connect() as conn:
        stored = get_budget(conn, "b")
        entries = list(conn.execute(select(audit_log).order_by(audit_log.c.id)))
    assert stored == Budget("b", Decimal(7), period="day", hard=True)
    assert stored is not None and stored.created_at == made and stored.created_by == "alice"
    assert [(e.action, e.who) for e in entries] == [("add", "alice"), ("edit", "bob")]
    assert entries[1].before["limit_usd"] == "5" and entries[1].after["limit_usd"] == "7"
    assert entries[1].after["period"] == "day" and entries[1].before["period"] == "month"


def test_a_change_of_an_unknown_or_bad_budget_writes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        add_budget(conn, Budget("b", Decimal(5)), "alice")
    with engine.begin() as conn, pytest.raises(BudgetError, match="no budget named 'c'"):
        change_budget(conn, Budget("c", Decimal(5)), "bob")
    with engine.begin() as conn, pytest.raises(BudgetError, match="limit_usd"):
        change_budget(conn, Budget("b", Decimal(-1)), "bob")
    with engine.connect() as conn:
        assert get_budget(conn, "b") == Budget("b", Decimal(5))
        assert len(list(conn.execute(select(audit_log)))) == 1

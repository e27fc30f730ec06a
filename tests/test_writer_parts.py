"""The writer's parts on their own: the store's health, the split of a refused batch, the
background refresher and the counters, with a fake clock and a fake write (no store)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.conftest import run_together
from tracking.counters import Counters
from tracking.events import CallEvent
from tracking.health import FIRST_BACKOFF, MAX_BACKOFF, StoreHealth
from tracking.refresher import Refresher
from tracking.refused import REFUSALS_PER_BATCH, RefusesEveryCall, write_apart


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_store_health_backs_off_doubling_to_a_bound_and_recovers() -> None:
    clock = Clock()
    health = StoreHealth(clock)
    assert health.ok and health.may_try()
    health.down()
    assert not health.ok and not health.may_try()
    clock.now += FIRST_BACKOFF
    assert health.may_try()
    waits = []
    for _ in range(10):
        health.down()
        waits.append(health.next_retry - clock.now)
    assert waits[:3] == [2 * FIRST_BACKOFF, 4 * FIRST_BACKOFF, 8 * FIRST_BACKOFF]
    assert waits[-1] == MAX_BACKOFF
    assert health.up(health.downs) and health.ok and health.backoff == FIRST_BACKOFF
    assert not health.up(health.downs)  # already up: nothing changes
    health.down()
    assert health.next_retry - clock.now == FIRST_BACKOFF  # a new outage starts over


def test_a_late_success_does_not_mark_the_store_up_after_a_newer_failure() -> None:
    health = StoreHealth(Clock())
    began = health.downs  # a slow write starts...
    health.down()  # ...another fails meanwhile...
    assert not health.up(began) and not health.ok  # ...the slow one proves nothing newer
    assert health.up(health.downs) and health.ok


def events(n: int) -> list[CallEvent]:
    when = datetime(2026, 5, 1, tzinfo=UTC)
    return [CallEvent(uuid.uuid4(), when, "openai", "gpt-4o", input_tokens=i) for i in range(n)]


class Refused(Exception):
    pass


class Unreachable(Exception):
    pass


def refuses(exc: BaseException) -> bool:
    return isinstance(exc, Refused)


def fake_store(bad: set[uuid.UUID], fail_after: int | None = None):
    """A write that refuses any part holding a bad call, and fails (not a refusal) once it
    has stored ``fail_after`` parts; returns it and the parts it stored."""
    stored: list[list[CallEvent]] = []

    def write(part: list[CallEvent]) -> None:
        if bad & {e.id for e in part}:
            raise Refused("value too long")
        if fail_after is not None and len(stored) == fail_after:
            raise Unreachable("connection reset")
        stored.append(part)

    return write, stored


def test_one_bad_call_in_a_thousand_is_set_aside_and_the_rest_written() -> None:
    calls = events(1000)
    bad = calls[637]
    write, stored = fake_store({bad.id})
    apart = write_apart(calls, write, refuses, Refused("value too long"))
    assert apart.ok and apart.unwritten == []
    assert [(e.id, why) for e, why in apart.refused] == [(bad.id, "Refused: value too long")]
    assert [e.id for part in stored for e in part] == [e.id for e in calls if e is not bad]
    assert len(stored) <= 2 * 10  # about 2 x log2(1000) writes, not a thousand


def test_a_store_refusing_every_call_stops_the_split_and_sets_nothing_aside() -> None:
    calls = events(200)
    write, stored = fake_store({e.id for e in calls})
    apart = write_apart(calls, write, refuses, Refused("no"))
    assert isinstance(apart.failure, RefusesEveryCall)
    assert str(REFUSALS_PER_BATCH) in str(apart.failure)
    assert apart.refused == [] and stored == []
    assert sorted(e.id for e in apart.unwritten) == sorted(e.id for e in calls)


def test_a_few_refusals_short_of_the_bound_are_all_set_aside() -> None:
    calls = events(300)
    bad = {calls[i].id for i in range(0, 300, 300 // REFUSALS_PER_BATCH)[:REFUSALS_PER_BATCH]}
    write, stored = fake_store(bad)
    apart = write_apart(calls, write, refuses, Refused("no"))
    assert apart.ok and {e.id for e, _ in apart.refused} == bad
    assert len([e for part in stored for e in part]) == 300 - len(bad)


def test_a_store_failure_midway_returns_exactly_the_calls_not_yet_written() -> None:
    calls = events(1000)
    bad = {calls[10].id, calls[900].id}
    write, stored = fake_store(bad, fail_after=4)
    apart = write_apart(calls, write, refuses, Refused("no"))
    assert isinstance(apart.failure, Unreachable)
    written = [e for part in stored for e in part]
    set_aside = [e for e, _ in apart.refused]
    assert [e.id for e in set_aside] == [calls[10].id]
    # every call exactly once: stored, set aside, or handed back in its order
    assert sorted(e.id for e in written + set_aside + apart.unwritten) == sorted(
        e.id for e in calls
    )
    assert apart.unwritten == [e for e in calls if e not in written and e not in set_aside]


def test_the_refresher_reloads_every_interval_and_keeps_the_old_value_on_error() -> None:
    clock = Clock()
    answers: list[object] = ["v1", ConnectionError("store down"), ConnectionError("still"), "v2"]
    errors: list[BaseException] = []

    def load() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    prices = Refresher("prices", load, interval=60, clock=clock, on_error=errors.append)
    assert prices.status() == {"age_s": None, "error": None}
    assert prices.refresh_if_due() and prices.value == "v1"
    clock.now += 59
    assert not prices.refresh_if_due() and prices.status() == {"age_s": 59.0, "error": None}
    clock.now += 1
    assert not prices.refresh_if_due()  # the store is down: the old value stays
    assert prices.value == "v1" and prices.status()["error"] == "ConnectionError: store down"
    assert [str(e) for e in errors] == ["store down"]
    clock.now += FIRST_BACKOFF - 0.01
    assert not prices.due()  # backing off
    clock.now += 0.01
    assert not prices.refresh_if_due() and not prices.due()
    clock.now += 2 * FIRST_BACKOFF  # the backoff doubled
    assert prices.refresh_if_due() and prices.value == "v2"
    assert prices.status() == {"age_s": 0.0, "error": None}


def test_the_refreshers_backoff_never_exceeds_its_interval_nor_the_bound() -> None:
    clock = Clock()

    def load() -> int:
        raise OSError("down")

    for interval, bound in ((5.0, 5.0), (600.0, MAX_BACKOFF)):
        budgets = Refresher("budgets", load, interval=interval, clock=clock)
        waits = []
        for _ in range(12):
            budgets.refresh()
            started = clock.now
            while not budgets.due():
                clock.now += 0.25
            waits.append(clock.now - started)
        assert max(waits) == bound
    budgets.make_due()
    assert budgets.due()


def test_counters_add_exactly_across_threads() -> None:
    counters = Counters(("rejected", "written"))

    def hammer() -> None:
        for _ in range(10_000):
            counters.add("rejected")
            counters.add("written", 2)

    run_together(hammer)
    assert counters.snapshot() == {"rejected": 40_000, "written": 80_000}
    assert counters["written"] == 80_000
    with pytest.raises(KeyError):
        counters.add("misspelt")

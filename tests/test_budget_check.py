"""Enforcement in the host app: ``tracking.check_budget`` decisions per scope on both stores,
soft and hard, the process's own calls counted at once, reloads, a new period, several threads
and processes, a store that goes away, and ``instrument(client, enforce_budgets=True)`` with the
real OpenAI and Anthropic SDKs against the local stub (counting the requests it receives)."""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

import tracking
from tests.conftest import _empty, add_test_prices, stored_calls
from tests.llm_stub import (
    Reply,
    anthropic_events,
    anthropic_message,
    anthropic_usage,
    openai_chat,
    openai_chat_chunks,
    openai_usage,
)
from tests.tcpproxy import TcpProxy
from tracking.budget_guard import BudgetGuard
from tracking.budget_store import Budget, add_budget
from tracking.db import make_engine
from tracking.events import CallEvent
from tracking.migrate import upgrade
from tracking.ratelog import RateLimitedLog
from tracking.schema import calls, customer_users
from tracking.store import write_batch

ROOT = Path(__file__).resolve().parent.parent
D = Decimal


def add(url: str, *found: Budget) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for budget in found:
            add_budget(conn, budget, "test")
    engine.dispose()


def write_elsewhere(url: str, *events: CallEvent) -> None:
    """Calls stored by some other process's writer: only a reload shows them here."""
    engine = make_engine(url)
    with engine.begin() as conn:
        write_batch(conn, list(events))
    engine.dispose()


def stored_total(url: str) -> Decimal:
    """What every call in the store cost, summed by the store."""
    engine = make_engine(url)
    with engine.connect() as conn:
        total = conn.execute(select(func.sum(calls.c.cost_usd))).scalar_one()
    engine.dispose()
    return total


def event(cost: str, at: datetime | None = None, **fields) -> CallEvent:
    values = {"provider": "openai", "model": "gpt-4o", **fields}
    return CallEvent(
        id=uuid.uuid4(),
        occurred_at=at or datetime.now(UTC),
        cost_usd=D(cost),
        priced=True,
        **values,
    )


def start_tracking(url: str, journal: object, **options: object) -> None:
    """tracking with a fast writer; budgets reloaded only when the test says (by default)."""
    settings: dict = {"flush_interval": 0.05, "budget_refresh_interval": 3600, **options}
    tracking.configure(url=url, journal_path=str(journal), **settings)


@pytest.fixture
def guarded(store_url: str, tmp_path) -> Iterator[str]:
    """tracking on a fresh store; budgets reloaded only when a test says so."""
    start_tracking(store_url, tmp_path / "journal.jsonl")
    yield store_url
    tracking.shutdown(timeout=5)


def check(**attribution) -> tuple[bool, Decimal | None, str | None]:
    d = tracking.check_budget(**attribution)
    return d.allowed, d.remaining, d.budget


# --- decisions ----------------------------------------------------------------------------------


def test_each_scope_decides_for_the_calls_it_covers(guarded: str) -> None:
    add(
        guarded,
        Budget("everything", D("100"), hard=True),
        Budget("user", D("10"), user_id="u_1", hard=True),
        Budget("feature", D("20"), feature="chat", hard=True),
        Budget("model", D("30"), model="gpt-4o-mini", hard=True),
        Budget("provider", D("40"), provider="anthropic", hard=True),
        Budget("customer", D("5"), customer_id="acme", hard=True),
        Budget("tag", D("3"), tag_key="team", tag_value="growth", hard=True),
        Budget("user+feature", D("2"), user_id="u_2", feature="chat", hard=True),
    )
    engine = make_engine(guarded)
    with engine.begin() as conn:
        conn.execute(insert(customer_users), [{"user_id": "u_acme", "customer_id": "acme"}])
    engine.dispose()
    write_elsewhere(
        guarded,
        event("1", user_id="u_1"),
        event("4", user_id="u_acme", feature="search"),
        event("2.5", user_id="u_3", tags={"team": "growth"}),
        event("0.5", user_id="u_2", feature="chat", model="gpt-4o-mini"),
        event("7", provider="anthropic", model="claude"),
    )
    assert tracking.refresh_budgets()
    # 15 spent in all; each check is decided by the budget with the least left
    assert check() == (True, D("85"), "everything")
    assert check(user_id="u_1") == (True, D("9"), "user")
    assert check(user_id="u_9", feature="chat") == (True, D("19.5"), "feature")
    assert check(model="gpt-4o-mini") == (True, D("29.5"), "model")
    assert check(provider="anthropic", model="claude") == (True, D("33"), "provider")
    assert check(user_id="u_acme") == (True, D("1"), "customer")  # the user's customer
    assert check(customer_id="acme") == (True, D("1"), "customer")
    assert check(team="growth") == (True, D("0.5"), "tag")
    assert check(user_id="u_2", feature="chat") == (True, D("1.5"), "user+feature")
    assert check(user_id="u_2") == (True, D("85"), "everything")  # its feature not given
    with tracking.attribute(user_id="u_2", feature="chat"):  # taken from the block in force
        assert check() == (True, D("1.5"), "user+feature")
        assert check(feature="other") == (True, D("85"), "everything")


def test_tag_budgets_match_as_the_store_does(guarded: str) -> None:
    add(
        guarded,
        Budget("demo", D("1"), tag_key="demo", tag_value="true", hard=True),
        Budget("n", D("1"), tag_key="n", tag_value="1", hard=True),
    )
    tracking.refresh_budgets()
    assert check(demo=True)[2] == "demo" and check(demo="true")[2] == "demo"
    assert check(demo=False)[2] is None and check(demo="yes")[2] is None
    assert check(n=1)[2] == "n" and check(n=1.0)[2] == "n" and check(n="1")[2] == "n"
    assert check(n=2)[2] is None


def test_only_hard_budgets_deny(guarded: str) -> None:
    add(
        guarded,
        Budget("soft", D("1"), feature="chat"),
        Budget("hard", D("1"), feature="search", hard=True),
        Budget("hard-roomy", D("50"), user_id="u_1", hard=True),
    )
    write_elsewhere(guarded, event("3", feature="chat"), event("3", feature="search"))
    tracking.refresh_budgets()
    assert check(feature="chat") == (True, D("-2"), "soft")  # overspent, yet a soft one
    assert check(feature="search") == (False, D("-2"), "hard")
    # a hard budget with room decides over a soft one with less left: the call may go
    assert check(feature="chat", user_id="u_1") == (True, D("50"), "hard-roomy")


def test_no_budget_applies_no_budget_decides(guarded: str) -> None:
    tracking.refresh_budgets()
    assert check(user_id="u_1") == (True, None, None)
    add(guarded, Budget("u_2 only", D("0"), user_id="u_2", hard=True))
    tracking.refresh_budgets()
    assert check(user_id="u_1") == (True, None, None)
    assert check(user_id="u_2") == (False, D("0"), "u_2 only")  # a $0 limit allows nothing


def test_an_id_that_is_not_text_is_refused_with_a_message(guarded: str, tmp_path) -> None:
    add(guarded, Budget("u", D("0"), user_id="u_1", hard=True))
    tracking.refresh_budgets()
    with pytest.raises(ValueError, match=r"user_id must be text in check_budget, got \['u_1'\]"):
        tracking.check_budget(user_id=["u_1"])  # strict (the tests' mode): raised
    tracking.configure(url=guarded, journal_path=str(tmp_path / "j2.jsonl"), strict=False)
    tracking.refresh_budgets()
    assert check(user_id=["u_1"]) == (True, None, None)  # the host's call goes on
    assert tracking.stats()["rejected"] == 1
    assert check(user_id="u_1") == (False, D("0"), "u")


# --- the process's own calls, reloads, periods ------------------------------------------------


def test_the_process_own_calls_deny_at_the_limit_without_a_reload(guarded: str) -> None:
    add(guarded, Budget("loop", D("1"), user_id="u_loop", hard=True))
    tracking.refresh_budgets()
    made = 0
    with tracking.attribute(user_id="u_loop"):
        while tracking.check_budget().allowed and made < 100:
            tracking.record("openai", "gpt-4o", cost_usd="0.3")
            made += 1
    assert made == 4  # 0, 0.3, 0.6, 0.9 left room; 1.2 does not
    assert check(user_id="u_loop") == (False, D("-0.2"), "loop")
    assert tracking.stats()["refreshers"]["budgets"]["loaded"]
    # a reload finds those calls in the store and counts them once, not twice
    assert tracking.refresh_budgets()
    assert check(user_id="u_loop") == (False, D("-0.2"), "loop")


def test_a_call_stored_while_a_reload_reads_is_counted_once(guarded: str) -> None:
    """A call recorded and stored in the middle of a load (between its first read and the
    spend's): the load's snapshot does not hold it, so its addition must stay, once."""
    from sqlalchemy import event as sa_event

    add(guarded, Budget("mid", D("10"), user_id="u_m", hard=True))
    tracking.refresh_budgets()
    tracking.record("openai", "gpt-4o", user_id="u_m", cost_usd="1")
    assert tracking.flush(10)
    engine = tracking.client.get().writer.sink.engine  # type: ignore[union-attr]
    loader = threading.get_ident()
    done: list[bool] = []

    def meanwhile(conn, cursor, statement, *args) -> None:
        if threading.get_ident() == loader and "rollups" in statement and not done:
            done.append(True)
            tracking.record("openai", "gpt-4o", user_id="u_m", cost_usd="2")
            assert tracking.flush(10)  # stored by the writer's own connection, now

    sa_event.listen(engine, "before_cursor_execute", meanwhile)
    try:
        assert tracking.refresh_budgets()
    finally:
        sa_event.remove(engine, "before_cursor_execute", meanwhile)
    assert done
    assert check(user_id="u_m") == (True, D("7"), "mid")
    assert tracking.refresh_budgets()  # the next load finds it stored: counted once still
    assert check(user_id="u_m") == (True, D("7"), "mid")


def test_a_call_id_recorded_twice_counts_once(guarded: str) -> None:
    add(guarded, Budget("twice", D("10"), user_id="u_t", hard=True))
    tracking.refresh_budgets()
    call_id = uuid.uuid4()
    for _ in range(2):
        tracking.record("openai", "gpt-4o", user_id="u_t", cost_usd="3", call_id=call_id)
    assert check(user_id="u_t") == (True, D("7"), "twice")
    assert tracking.flush(10)
    assert tracking.refresh_budgets()
    assert check(user_id="u_t") == (True, D("7"), "twice")


def test_a_call_the_writer_drops_is_taken_back(store_url: str, tmp_path) -> None:
    add(store_url, Budget("q", D("10"), user_id="u_q", hard=True))
    start_tracking(store_url, tmp_path / "j.jsonl", queue_size=1, flush_interval=60)
    try:
        tracking.refresh_budgets()
        tracking.record("openai", "gpt-4o", user_id="u_q", cost_usd="1")
        tracking.record("openai", "gpt-4o", user_id="u_q", cost_usd="2")  # the queue is full
        assert tracking.stats()["dropped"] == 1
        assert check(user_id="u_q") == (True, D("9"), "q")
    finally:
        tracking.shutdown(timeout=5)


def test_a_reload_picks_up_spend_another_process_wrote(guarded: str) -> None:
    add(guarded, Budget("shared", D("1"), feature="f", hard=True))
    tracking.refresh_budgets()
    tracking.record("openai", "gpt-4o", feature="f", cost_usd="0.25")
    write_elsewhere(guarded, event("0.5", feature="f"))
    assert check(feature="f") == (True, D("0.75"), "shared")  # not seen yet
    tracking.refresh_budgets()
    assert check(feature="f") == (True, D("0.25"), "shared")
    write_elsewhere(guarded, event("0.5", feature="f"))
    tracking.refresh_budgets()
    assert check(feature="f") == (False, D("-0.25"), "shared")


def test_the_background_thread_reloads_by_itself(store_url: str, tmp_path) -> None:
    """No refresh_budgets(): the first check starts the loads, which repeat at the interval."""
    add(store_url, Budget("bg", D("1"), user_id="u_bg", hard=True))
    start_tracking(store_url, tmp_path / "j.jsonl", budget_refresh_interval=0.05)
    try:
        tracking.check_budget(user_id="u_bg")  # starts the thread
        assert wait_for(lambda: check(user_id="u_bg") == (True, D("1"), "bg"))
        write_elsewhere(store_url, event("1", user_id="u_bg"))
        assert wait_for(lambda: check(user_id="u_bg") == (False, D("0"), "bg"))
    finally:
        tracking.shutdown(timeout=5)


def wait_for(condition, seconds: float = 20.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``seconds`` pass (False): not a timing test,
    the deadline is only there so a broken loader fails instead of hanging."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_new_period_starts_at_the_boundary_between_reloads(engine) -> None:
    """New York days, checked a second before and after local midnight, with no reload."""
    created = datetime(2026, 2, 1, tzinfo=UTC)
    day = Budget("day", D("1"), period="day", timezone="America/New_York", feature="g", hard=True)
    carry = Budget(
        "carry",
        D("1"),
        period="day",
        timezone="America/New_York",
        feature="f",
        hard=True,
        rollover=True,
    )
    with engine.begin() as conn:
        add_budget(conn, day, "test", now=created)
        add_budget(conn, carry, "test", now=created)
    midnight = datetime(2026, 3, 11, 4, tzinfo=UTC)  # 00:00 in New York (EDT since 8 March)
    clock = [(midnight - timedelta(seconds=1)).timestamp()]
    guard = BudgetGuard(lambda: engine, 3600, RateLimitedLog(), clock=lambda: clock[0])

    def decide(feature: str) -> tuple[bool, Decimal | None, str | None]:
        d = guard.check(None, feature, None, None, None, {})
        return d.allowed, d.remaining, d.budget

    try:
        assert guard.refresh()
        before = midnight - timedelta(seconds=2)
        guard.add(event("1.5", at=before, feature="g"))
        guard.add(event("0.25", at=before, feature="f"))
        assert decide("g") == (False, D("-0.5"), "day")
        assert decide("f") == (True, D("1.75"), "carry")  # 2: the idle day before rolled in 1
        clock[0] = (midnight + timedelta(seconds=1)).timestamp()
        assert decide("g") == (True, D("1"), "day")
        assert decide("f") == (True, D("1.75"), "carry")  # 0.75 unspent rolled over
        guard.add(event("0.5", at=midnight, feature="f"))
        assert decide("f") == (True, D("1.25"), "carry")
        guard.add(event("0.5", at=before, feature="f"))  # recorded late, for the day before
        assert decide("f") == (True, D("0.75"), "carry")  # it rolled over 0.25 only
    finally:
        guard.stop()


# --- several threads, several processes -------------------------------------------------------

COST = D("0.07")


def test_threads_stop_at_the_limit_overspending_at_most_a_call_each(guarded: str) -> None:
    add(guarded, Budget("threads", D("1"), feature="burst", hard=True))
    tracking.refresh_budgets()
    made: list[int] = []

    def loop() -> None:
        count = 0
        with tracking.attribute(feature="burst"):
            while tracking.check_budget().allowed and count < 200:  # 15 or so, if it works
                tracking.record("openai", "gpt-4o", cost_usd=COST)
                count += 1
        made.append(count)

    threads = [threading.Thread(target=loop) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert tracking.flush(10)
    total = stored_total(guarded)
    assert sum(made) * COST == total
    assert D(1) <= total <= D(1) + len(threads) * COST
    assert not tracking.check_budget(feature="burst").allowed


def _spend_until_denied(url: str, journal: str, made) -> None:
    """One host process: reload, check, call, until the shared budget says no. The bound then
    holds whatever the scheduling: take the last load that led to an allowed call; what was
    stored then was under $1, and each process has at most one call not stored then."""
    start_tracking(url, journal)
    count = 0
    with tracking.attribute(feature="fleet"):
        while count < 200:  # 15 or so in all, if it works
            tracking.refresh_budgets()  # reads what every process has stored
            if not tracking.check_budget().allowed:
                break
            tracking.record("openai", "gpt-4o", cost_usd=COST)
            # stored before the next check, as the writer's half second is shorter than a
            # real call: then only the call each process has in flight is unseen by the others
            assert tracking.flush(30)
            count += 1
    tracking.shutdown(timeout=10)
    made.put(count)


def test_processes_stop_at_the_limit_overspending_at_most_a_call_each(
    guarded: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a spawned child runs the parent's main script first; after an AppTest in this process
    # that is dashboard/app.py, which fails outside Streamlit: the children import by name only
    monkeypatch.delattr(sys.modules["__main__"], "__file__", raising=False)
    add(guarded, Budget("fleet", D("1"), feature="fleet", hard=True))
    spawn = multiprocessing.get_context("spawn")
    made = spawn.Queue()
    workers = [
        spawn.Process(
            target=_spend_until_denied, args=(guarded, str(tmp_path / f"j{i}.jsonl"), made)
        )
        for i in range(3)
    ]
    for p in workers:
        p.start()
    counts = [made.get(timeout=120) for _ in workers]
    for p in workers:
        p.join(30)
        assert p.exitcode == 0
    total = stored_total(guarded)
    assert sum(counts) * COST == total
    assert D(1) <= total <= D(1) + len(workers) * COST


# --- a store that goes away -------------------------------------------------------------------


def kept_budget_behind_a_proxy(pg_url: str) -> tuple[TcpProxy, str]:
    """The session's store emptied, with a hard $1 budget "kept" on user u_k, and a proxy to it
    (started) with the URL through it."""
    engine = make_engine(pg_url)
    upgrade(engine)  # idempotent: the session's database, emptied of other tests' rows
    _empty(engine)
    engine.dispose()
    url = make_url(pg_url)
    proxy = TcpProxy(url.port or 5432)
    proxy.start()
    add(pg_url, Budget("kept", D("1"), user_id="u_k", hard=True))
    return proxy, url.set(port=proxy.port).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_an_unreachable_store_keeps_the_last_figures_and_never_raises(pg_url, tmp_path) -> None:
    proxy, through = kept_budget_behind_a_proxy(pg_url)
    start_tracking(through, tmp_path / "j.jsonl")
    try:
        assert tracking.refresh_budgets()
        tracking.record("openai", "gpt-4o", user_id="u_k", cost_usd="0.6")
        assert tracking.flush(10)
        proxy.stop()
        assert not tracking.refresh_budgets()  # no error raised, the old figures kept
        assert check(user_id="u_k") == (True, D("0.4"), "kept")
        tracking.record("openai", "gpt-4o", user_id="u_k", cost_usd="0.6")  # journaled
        assert check(user_id="u_k") == (False, D("-0.2"), "kept")
        status = tracking.stats()["refreshers"]["budgets"]
        assert status["loaded"] and status["error"]
    finally:
        proxy.stop()
        tracking.shutdown(timeout=1)


@pytest.mark.postgres
def test_a_budget_load_from_a_silent_store_gives_up_and_keeps_the_figures(pg_url, tmp_path) -> None:
    """A hop that holds the connection open and forwards nothing (a hung pooler): the load is
    ended by the writer's watchdog instead of waiting in recv() for good."""
    import threading

    from tracking.db import PG_CONNECT_ARGS
    from tracking.sink import watchdog_limit

    proxy, through = kept_budget_behind_a_proxy(pg_url)
    start_tracking(through, tmp_path / "j.jsonl", write_timeout=1)
    try:
        assert tracking.refresh_budgets()
        proxy.hang()
        loading = threading.Thread(target=tracking.refresh_budgets, daemon=True)
        loading.start()
        loading.join(watchdog_limit(1) + PG_CONNECT_ARGS["connect_timeout"] + 4)
        assert not loading.is_alive(), "the budget load still waits on the silent store"
        assert check(user_id="u_k") == (True, D("1"), "kept")  # the figures kept
        status = tracking.stats()["refreshers"]["budgets"]
        assert status["loaded"] and "did not answer" in status["error"], status
    finally:
        proxy.resume()
        proxy.stop()
        tracking.shutdown(timeout=1)


def test_before_the_first_load_every_call_is_allowed(tmp_path) -> None:
    start_tracking("postgresql://postgres@127.0.0.1:1/none", tmp_path / "j.jsonl")
    try:
        assert not tracking.refresh_budgets()
        assert check(user_id="u_1") == (True, None, None)
        assert tracking.stats()["refreshers"]["budgets"]["loaded"] is False
    finally:
        tracking.shutdown(timeout=0)


# --- instrument(client, enforce_budgets=True) ----------------------------------------------------

USAGE = openai_usage(1200, 300, cached=1000)
CALL_COST = D("0.00475")  # 200 x $2.50 + 1000 x $1.25 cached + 300 x $10, per million


def openai_client(stub, cls=openai.OpenAI):
    return tracking.instrument(
        cls(base_url=f"{stub.url}/v1", api_key="sk-test", max_retries=0), enforce_budgets=True
    )


def anthropic_client(stub, cls=anthropic.Anthropic):
    return tracking.instrument(
        cls(base_url=stub.url, api_key="sk-ant-test", max_retries=0), enforce_budgets=True
    )


def test_the_stub_receives_nothing_once_the_budget_is_spent(guarded: str, stub) -> None:
    add_test_prices(guarded)
    tracking.refresh_prices()
    add(guarded, Budget("chat", D("0.01"), user_id="u_1", hard=True))
    tracking.refresh_budgets()
    client = openai_client(stub)
    for _ in range(5):
        stub.reply(Reply(body=openai_chat("gpt-4o", USAGE)))
    messages = [{"role": "user", "content": "hi"}]
    with tracking.attribute(user_id="u_1"):
        for _ in range(3):  # 0, 0.00475 and 0.0095 spent: room left each time
            client.chat.completions.create(model="gpt-4o", messages=messages)
        with pytest.raises(tracking.BudgetExceeded) as refused:
            client.chat.completions.create(model="gpt-4o", messages=messages)
    assert len(stub.requests) == 3
    assert refused.value.decision == tracking.BudgetDecision(
        False, D("0.01") - 3 * CALL_COST, "chat"
    )
    with tracking.attribute(user_id="u_2"):  # another user's calls go on
        client.chat.completions.create(model="gpt-4o", messages=messages)
    assert len(stub.requests) == 4
    assert tracking.flush(10)
    assert len(stored_calls(guarded)) == 4  # the refused call was not made, so not logged


def _openai_paths(stub):
    sync, aclient = openai_client(stub), openai_client(stub, openai.AsyncOpenAI)
    messages = [{"role": "user", "content": "hi"}]
    return {
        "sync": lambda: sync.chat.completions.create(model="gpt-4o", messages=messages),
        "stream": lambda: sync.chat.completions.create(
            model="gpt-4o", messages=messages, stream=True
        ),
        "async": lambda: asyncio.run(
            aclient.chat.completions.create(model="gpt-4o", messages=messages)
        ),
        "copy": lambda: sync.with_options(timeout=5).chat.completions.create(
            model="gpt-4o", messages=messages
        ),
        "responses": lambda: sync.responses.create(model="gpt-4o", input="hi"),
        "raw response": lambda: sync.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=messages
        ),
        "stream helper": lambda: sync.chat.completions.stream(
            model="gpt-4o", messages=messages
        ).__enter__(),
    }


def _anthropic_paths(stub):
    sync, aclient = anthropic_client(stub), anthropic_client(stub, anthropic.AsyncAnthropic)
    kwargs = {
        "model": "claude-3-5-sonnet",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }

    def helper() -> None:
        with sync.messages.stream(**kwargs) as stream:
            stream.get_final_message()

    async def async_helper() -> None:
        async with aclient.messages.stream(**kwargs) as stream:
            await stream.get_final_message()

    return {
        "sync": lambda: sync.messages.create(**kwargs),
        "stream": lambda: sync.messages.create(**kwargs, stream=True),
        "async": lambda: asyncio.run(aclient.messages.create(**kwargs)),
        "stream helper": helper,
        "async stream helper": lambda: asyncio.run(async_helper()),
    }


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_every_path_refuses_before_sending(guarded: str, stub, sdk: str) -> None:
    add(guarded, Budget("zero", D("0"), feature="f", provider=sdk, hard=True))
    tracking.refresh_budgets()
    paths = (_openai_paths if sdk == "openai" else _anthropic_paths)(stub)
    with tracking.attribute(feature="f"):
        for name, send in paths.items():
            with pytest.raises(tracking.BudgetExceeded) as refused:
                send()
            assert refused.value.decision == tracking.BudgetDecision(False, D("0"), "zero"), name
    assert stub.requests == []
    assert tracking.flush(10)
    assert stored_calls(guarded) == []


def test_with_tracking_off_nothing_is_refused(store_url: str, stub, monkeypatch) -> None:
    add(store_url, Budget("zero", D("0"), hard=True))
    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    monkeypatch.setenv("UNITWISE_TRACKING", "off")  # the kill switch turns enforcement off too
    assert not tracking.refresh_budgets()
    assert check() == (True, None, None)
    stub.reply(Reply(body=openai_chat("gpt-4o", USAGE)))
    openai_client(stub).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert len(stub.requests) == 1


def test_a_model_budget_refuses_that_model_only(guarded: str, stub) -> None:
    add(guarded, Budget("no opus", D("0"), provider="anthropic", model="claude-opus", hard=True))
    tracking.refresh_budgets()
    claude = anthropic_client(stub)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(tracking.BudgetExceeded):
        claude.messages.create(model="claude-opus", max_tokens=10, messages=messages)
    usage = anthropic_usage(10, 5)
    stub.reply(Reply(body=anthropic_message("claude-haiku", usage)))
    stub.reply(Reply(events=anthropic_events("claude-haiku", usage, ["Hi"])))
    claude.messages.create(model="claude-haiku", max_tokens=10, messages=messages)
    with claude.messages.stream(model="claude-haiku", max_tokens=10, messages=messages) as s:
        s.get_final_message()
    assert [r.json()["model"] for r in stub.requests] == ["claude-haiku", "claude-haiku"]


def test_enforcement_turned_on_for_a_client_already_instrumented(guarded: str, stub) -> None:
    add(guarded, Budget("zero", D("0"), hard=True))
    tracking.refresh_budgets()
    client = tracking.instrument(openai.OpenAI(base_url=f"{stub.url}/v1", api_key="k"))
    stub.reply(Reply(body=openai_chat("gpt-4o", USAGE)))
    messages = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="gpt-4o", messages=messages)  # not enforced
    assert tracking.instrument(client, enforce_budgets=True) is client
    tracking.instrument(client)  # does not turn it off again
    with pytest.raises(tracking.BudgetExceeded):
        client.chat.completions.create(model="gpt-4o", messages=messages)
    assert len(stub.requests) == 1


def test_openai_stream_chunks_still_flow_when_allowed(guarded: str, stub) -> None:
    add(guarded, Budget("roomy", D("100"), hard=True))
    tracking.refresh_budgets()
    stub.reply(Reply(events=openai_chat_chunks("gpt-4o", ["Hel", "lo"], USAGE)))
    client = openai_client(stub)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello"


# --- the README's FastAPI handler -------------------------------------------------------------


def test_readme_fastapi_handler_answers_402(guarded: str, stub, monkeypatch, tmp_path) -> None:
    from fastapi.testclient import TestClient

    readme = (ROOT / "README.md").read_text()
    (example,) = [
        b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "BudgetExceeded" in b
    ]
    monkeypatch.setenv("UNITWISE_DATABASE_URL", guarded)
    monkeypatch.setenv("UNITWISE_JOURNAL_PATH", str(tmp_path / "readme.jsonl"))
    monkeypatch.setenv("OPENAI_BASE_URL", f"{stub.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-readme")
    add(guarded, Budget("u_broke", D("0"), user_id="u_broke", hard=True))
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 - runs the README's own example
    tracking.refresh_budgets()
    stub.reply(Reply(body=openai_chat("gpt-4o", USAGE, text="Short.")))
    with TestClient(namespace["app"]) as http:
        ok = http.post("/summarize", params={"user_id": "u_ok", "text": "long"})
        refused = http.post("/summarize", params={"user_id": "u_broke", "text": "long"})
    assert (ok.status_code, ok.json()) == (200, {"summary": "Short."})
    assert refused.status_code == 402
    assert refused.json() == {
        "error": "budget exceeded",
        "budget": "u_broke",
        "remaining_usd": "0.000000000",
    }
    assert len(stub.requests) == 1

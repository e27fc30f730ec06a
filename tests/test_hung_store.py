"""A store that goes silent without closing (a hung pooler, a NAT that forgot the flow).

The proxy holds every connection open and forwards nothing; the kernel still acknowledges
what is sent, so only the writer's watchdog ends the wait. Each test must see the batch
journaled within a bound (the watchdog's limit and the connect timeout), record never
waiting, and every call stored exactly once after the proxy forwards again.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from tests.tcpproxy import TcpProxy
from tests.test_writer import call, counts, empty_pg_store, wait_for, writer_for
from tracking.db import PG_CONNECT_ARGS
from tracking.sink import watchdog_limit

pytestmark = pytest.mark.postgres

WRITE_TIMEOUT = 1.0
# the watchdog's limit, then a reconnect through the silent proxy (libpq's connect_timeout)
BOUND = watchdog_limit(WRITE_TIMEOUT) + PG_CONNECT_ARGS["connect_timeout"] + 4.0


@pytest.fixture
def proxied(pg_url, tmp_path):
    empty_pg_store(pg_url)
    proxy = TcpProxy(make_url(pg_url).port or 5432)
    proxy.start()
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    writer = writer_for(
        url.render_as_string(hide_password=False), tmp_path, write_timeout=WRITE_TIMEOUT
    )
    try:
        yield proxy, writer
    finally:
        proxy.resume()
        writer.shutdown(2)
        proxy.stop()


def put_timed(writer, n: int, user: str) -> float:
    """Queue n calls; the slowest put in seconds."""
    slowest = 0.0
    for _ in range(n):
        began = time.perf_counter()
        writer.put(call(user))
        slowest = max(slowest, time.perf_counter() - began)
    return slowest


def assert_journaled_within_bound_then_stored_once(proxy, writer, pg_url, held: int) -> None:
    began = time.monotonic()
    assert writer.flush(BOUND), writer.stats()  # before the watchdog: stuck in recv() for good
    took = time.monotonic() - began
    stats = writer.stats()
    assert stats["timeouts"] >= 1 and not stats["store_ok"], stats
    assert stats["spilled"] == held and stats["journal_pending"], stats
    assert "did not answer" in (stats["last_error"] or ""), stats
    print(f"\nsilent store: {held} calls journaled {took:.1f} s after the flush began")

    proxy.resume()
    assert wait_for(lambda: not writer.stats()["journal_pending"], 40), writer.stats()
    assert writer.flush(10)
    assert counts(pg_url) == (100 + held, 100 + held, 100 + held)
    assert writer.stats()["dropped"] == 0


def test_a_silent_store_between_batches_is_given_up_and_journaled(proxied, pg_url) -> None:
    """The pooled connection went silent while idle: the pool's pre-ping hangs on it."""
    proxy, writer = proxied
    put_timed(writer, 100, "before")
    assert writer.flush(10) and counts(pg_url)[0] == 100

    proxy.hang()
    slowest = put_timed(writer, 200, "during")
    assert slowest < 0.05, slowest  # the host never waits on the store
    assert_journaled_within_bound_then_stored_once(proxy, writer, pg_url, 200)


def test_a_store_silent_in_the_middle_of_a_batch_is_given_up_and_journaled(proxied, pg_url) -> None:
    """The store goes silent once the batch's transaction began, on the connection it holds."""
    proxy, writer = proxied
    put_timed(writer, 100, "before")
    assert writer.flush(10) and counts(pg_url)[0] == 100

    def hang_on_begin(_conn) -> None:
        proxy.hang()

    event.listen(writer.sink.engine, "begin", hang_on_begin, once=True)
    put_timed(writer, 150, "during")
    assert_journaled_within_bound_then_stored_once(proxy, writer, pg_url, 150)


def test_a_price_load_from_a_silent_store_gives_up_and_keeps_the_book(proxied, pg_url) -> None:
    proxy, writer = proxied
    put_timed(writer, 100, "before")
    assert writer.flush(10)
    book = writer.prices.value
    assert book is not None

    proxy.hang()
    loading = threading.Thread(target=writer.refresh_prices, daemon=True)
    loading.start()
    loading.join(BOUND)
    assert not loading.is_alive(), "the price load still waits on the silent store"
    assert writer.prices.value is book  # the book in memory stays
    assert "did not answer" in (writer.prices.error or "")
    assert writer.stats()["timeouts"] >= 1

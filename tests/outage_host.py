"""A host process for tests/test_outage.py: threads recording calls at a steady pace, each
``record`` timed, while the test stops and restarts the store under it.

Run as ``python tests/outage_host.py '<json>'``. One line each on stdout:

- ``start <t>``: warmed up, the heap frozen, the threads released at ``time.monotonic() == t``
  (CLOCK_MONOTONIC, the same clock in the test's process)
- ``done <json>``: every call recorded and flushed: the waits, exceptions, stats

The timing is done here and not in pytest's process: in the full suite that one holds the
objects of a thousand tests, and one garbage collection of them (0.5 s once in CI) would be
read as a wait in ``record``. Here the warm-up's objects are frozen (``gc.freeze``) first.

Beside each caller runs a control thread, paced the same, timing the same calls built and
priced as ``record`` does, but not queued (``unqueued``): its waits are what the machine
(a shared one, its other tenants keeping both cores busy), the interpreter (the GIL, shared
with the writer's threads) and the call's own work cost. What ``record`` waits beyond that
is what the writer's side, the queue and its locks, makes it wait: the outage's only way in.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import tracking
from tracking import client

SLOW = 0.001  # a wait longer than this is listed, with when it happened


def call_id(run: str, thread: int, i: int) -> str:
    return f"{run}-{thread}-{i}"


def fields(run: str, thread: int, i: int) -> dict[str, Any]:
    return {
        "input_tokens": 1000 + i % 997,
        "cache_read_tokens": i % 300,
        "output_tokens": 1 + i % 251,
        "user_id": f"user-{i % 13}",
        "feature": f"{run}-{thread}",
        "call_id": call_id(run, thread, i),
    }


def record(run: str, thread: int, i: int) -> Any:
    return tracking.record(provider="openai", model="gpt-4o", **fields(run, thread, i))


def unqueued(run: str, thread: int, i: int) -> Any:
    """The control: the same call validated and priced as ``record`` does it, but never
    handed to the writer (the only way the store, up or down, can reach a caller)."""
    tracker = client.get()
    assert tracker is not None
    event = tracker.build("openai", "gpt-4o", fields(run, thread, i))
    book = tracker.writer.prices.value
    if book is not None:
        tracker._price_event(book, event)
    return event.id


def caller(
    conf: dict[str, Any],
    thread: int,
    start: threading.Barrier,
    out: dict[str, Any],
    work: Callable[[int], Any],
    name: str,
) -> None:
    """Call ``work`` ``calls`` times, spread evenly over ``seconds``, timing each call."""
    n, seconds = conf["calls_per_thread"], conf["seconds"]
    waits = [0.0] * n
    slow: list[tuple[float, float]] = []
    errors: list[str] = []
    refused = 0
    start.wait()
    began = time.monotonic()
    for i in range(n):
        t0 = time.perf_counter()
        try:
            got = work(i)
        except BaseException as exc:  # what the promise says never happens
            errors.append(repr(exc))
            got = None
        wait = time.perf_counter() - t0
        waits[i] = wait
        if got is None:
            refused += 1
        if wait > SLOW:
            slow.append((time.monotonic(), wait))
        if i % 10 == 9:  # keep to the pace, in steps of 10 calls (a sleep is ~0.1 ms late)
            ahead = began + (i + 1) * seconds / n - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    out[f"{name}{thread}"] = {"waits": waits, "slow": slow, "errors": errors, "refused": refused}


def summary(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The threads' waits together: median, p99, p99.9, max, and the slow ones with when."""
    waits = sorted(w for part in parts for w in part["waits"])
    n = len(waits)
    return {
        "p50": waits[n // 2],
        "p99": waits[n * 99 // 100],
        "p999": waits[n * 999 // 1000],
        "max": waits[-1],
        "slow": sorted(s for part in parts for s in part["slow"]),
    }


def main() -> None:
    conf = json.loads(sys.argv[1])
    tracking.configure(
        url=conf["url"],
        journal_path=conf["journal"],
        flush_interval=conf.get("flush_interval", 0.05),
        batch_size=conf.get("batch_size", 500),
    )
    for i in range(conf["warmup"]):  # imports, prices loaded, connections open, caches warm
        record(conf["run"] + "-warm", 0, i)
        unqueued(conf["run"] + "-warm", 0, i)
    if not tracking.flush(30):
        raise SystemExit(f"warm-up not flushed: {tracking.stats()}")
    gc.collect()
    gc.freeze()

    run, threads, out = conf["run"], conf["threads"], {}
    start = threading.Barrier(2 * threads + 1)
    running = []
    for t in range(threads):
        calls = partial(record, run, t)
        control = partial(unqueued, run, t)
        running.append(threading.Thread(target=caller, args=(conf, t, start, out, calls, "t")))
        running.append(threading.Thread(target=caller, args=(conf, t, start, out, control, "c")))
    for t in running:
        t.start()
    print("start", repr(time.monotonic()), flush=True)
    start.wait()
    for t in running:
        t.join()
    ended = time.monotonic()
    flushed = tracking.flush(conf.get("flush_timeout", 120.0))
    stats = tracking.stats()
    tracking.shutdown(timeout=10)

    callers = [part for name, part in out.items() if name.startswith("t")]
    controls = [part for name, part in out.items() if name.startswith("c")]
    report = {
        "calls": sum(len(part["waits"]) for part in callers),
        "ended": ended,
        "flushed": flushed,
        "record": summary(callers),
        "control": summary(controls),
        "errors": [e for part in callers + controls for e in part["errors"]],
        "refused": sum(part["refused"] for part in callers),
        "stats": stats,
    }
    print("done", json.dumps(report, default=str), flush=True)


if __name__ == "__main__":
    main()

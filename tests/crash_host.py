"""A host process for tests/test_crash.py: configures tracking, records calls, and is SIGKILLed.

Run as ``python tests/crash_host.py '<json>'``. It talks to the test on stdout, one line each:

- ``ready <t>``: tracking is configured (a journal left behind is being replayed from now on)
- ``rec <n> <t>``: calls ``0 .. n-1`` have returned from ``record`` by ``time.monotonic() == t``
  (CLOCK_MONOTONIC, the same clock in every process of the machine)
- ``phase <name> <n>``: a hook reached the state the test kills it in, and holds it there
- ``done <stats>``: everything was recorded and flushed (a host that was not killed)

The hooks wrap tracking's own functions from outside (tracking is unchanged): they let the real
code run, announce the state it is in and hold it for ``hold`` seconds, so that the test's
SIGKILL lands in that state and not merely near it:

- ``in_transaction``: the ``hook_at``-th batch's rows are written in its open transaction,
  not committed
- ``journal_torn``: half of the ``hook_at``-th journal append is written, no newline, no fsync
- ``committed``: the ``hook_at``-th batch (a replay's, say) is committed, the next not begun
- ``cut``: a replay wrote all its batches; the host waits for a line on stdin (the test appends
  calls to the journal meanwhile), then cuts the replayed part: the rest is written over the
  start of the file, not yet fsync'd nor the file shortened
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import tracking
import tracking.journal
import tracking.sink

_emit_lock = threading.Lock()


def emit(*parts: object) -> None:
    with _emit_lock:
        print(*parts, flush=True)


def install(hook: str, at: int, hold: float) -> None:
    """Wrap the function whose ``at``-th call is the state to be killed in."""
    calls = {"n": 0}

    def reached() -> bool:
        calls["n"] += 1
        return calls["n"] == at

    if hook == "in_transaction":
        write_batch = tracking.sink.write_batch

        def in_transaction(conn: Any, batch: Any, known: Any = None) -> int:
            new = write_batch(conn, batch, known)
            if reached():
                emit("phase in_transaction", new)
                time.sleep(hold)
            return new

        tracking.sink.write_batch = in_transaction  # type: ignore[assignment]
    elif hook == "journal_torn":
        write_all = tracking.journal._write_all

        def torn(handle: Any, data: bytes) -> None:
            if reached():
                middle = data.rfind(b"\n", 0, len(data) // 2) + 1 + 40  # 40 bytes into a line
                write_all(handle, data[:middle])
                emit("phase journal_torn", data.count(b"\n"))
                time.sleep(hold)
            write_all(handle, data)

        tracking.journal._write_all = torn
    elif hook == "committed":
        write = tracking.sink.StoreSink.write

        def committed(self: Any, batch: Any, downs: int) -> int:
            new = write(self, batch, downs)
            if reached():
                emit("phase committed", new)
                time.sleep(hold)
            return new

        tracking.sink.StoreSink.write = committed  # type: ignore[method-assign]
    elif hook == "cut":
        cut = tracking.journal.Journal._cut
        write_all = tracking.journal._write_all
        cutting = threading.local()

        def paused_cut(self: Any, replayed_data: bytes) -> None:
            emit("phase before_cut", replayed_data.count(b"\n"))
            sys.stdin.readline()  # the test appends to the journal, then lets the cut go on
            cutting.on = True
            try:
                cut(self, replayed_data)
            finally:
                cutting.on = False

        def overwritten(handle: Any, data: bytes) -> None:
            write_all(handle, data)
            if getattr(cutting, "on", False):
                emit("phase cut", data.count(b"\n"))
                time.sleep(hold)

        tracking.journal.Journal._cut = paused_cut  # type: ignore[method-assign]
        tracking.journal._write_all = overwritten
    elif hook != "none":
        raise SystemExit(f"unknown hook {hook}")


def main() -> None:
    conf = json.loads(sys.argv[1])
    install(conf.get("hook", "none"), conf.get("hook_at", 1), conf.get("hold", 30.0))
    tracking.configure(
        url=conf["url"],
        journal_path=conf["journal"],
        batch_size=conf.get("batch_size", 500),
        flush_interval=conf.get("flush_interval", 0.05),
        shutdown_timeout=conf.get("shutdown_timeout", 5.0),
    )
    emit("ready", repr(time.monotonic()))
    run, count, rate, chunk = conf.get("run", "r"), conf.get("count", 0), conf["rate"], 20
    started = time.monotonic()
    for i in range(count):
        tracking.record(
            provider="openai",
            model="gpt-4o",
            input_tokens=i + 1,
            output_tokens=1,
            user_id=f"user-{i % 7}",
            feature=run,
            call_id=f"{run}-{i}",
        )
        if (i + 1) % chunk == 0 or i + 1 == count:
            emit("rec", i + 1, repr(time.monotonic()))
            ahead = started + (i + 1) / rate - time.monotonic()  # keep to ``rate`` calls/s
            if ahead > 0:
                time.sleep(ahead)
    flushed = tracking.flush(conf.get("flush_timeout", 30.0))
    emit("done", json.dumps({"flushed": flushed, **tracking.stats()}, default=str))
    if conf.get("linger"):
        time.sleep(conf["linger"])  # killed here when the test wants a crash after the last call
    tracking.shutdown()


if __name__ == "__main__":
    main()

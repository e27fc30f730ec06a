"""Store outage: the PostgreSQL server stopped (fast shutdown) or killed (``-m immediate``) for
30 s under 4 recording threads, then started again (issue 20).

The promise: **every call is in the store exactly once afterwards, the rollups equal the sums
over the calls, the host never sees an exception, and ``record`` does not wait on the outage**.
The server is a throwaway cluster of this test's own (tests/pg_cluster.py), so stopping it
leaves the shared one alone. The host is tests/outage_host.py, a process of its own that times
every ``record`` beside control threads doing the same calls unqueued (see there); the calls
are spread over ``SECONDS`` and the server is down from a third of the way in, for ``OUTAGE``
seconds (``UNITWISE_OUTAGE_SECONDS``, ``UNITWISE_OUTAGE_DOWN``: 60 and 30 by default).

Checked to fail: with the journal keeping half of each batch, "27680 calls lost"; with the
counters' lock held across the journal's fsync (so that ``record`` waits on the disk during the
outage), record p99.9 20 ms against the control's 0.6 ms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import CI, add_test_prices, assert_rollups_equal_the_calls
from tests.outage_host import call_id
from tests.pg_cluster import Cluster
from tests.test_writer import counts
from tracking.db import make_engine
from tracking.events import call_uuid
from tracking.migrate import upgrade
from tracking.schema import calls

HOST = Path(__file__).with_name("outage_host.py")
ROOT = HOST.parent.parent
THREADS, CALLS, WARMUP = 4, 100_000, 1_000
SECONDS = float(os.environ.get("UNITWISE_OUTAGE_SECONDS", "60"))  # the calls are spread over
OUTAGE = float(os.environ.get("UNITWISE_OUTAGE_DOWN", "30"))
DOWN_AT = SECONDS / 3
QUIET = 0.00025  # a control p99.9 under this: the machine takes a quarter of the 1 ms promised

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A running throwaway cluster, migrated and priced; stopped and removed whatever happens."""
    try:
        made = Cluster()
    except (FileNotFoundError, KeyError) as exc:  # no PostgreSQL binaries or no postgres user
        if CI:
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"cannot make a PostgreSQL cluster here: {exc}")
    try:
        made.start()
        engine = make_engine(made.url)
        upgrade(engine)
        engine.dispose()
        add_test_prices(made.url)
        yield made
    finally:
        made.destroy()


def run_host(conf: dict[str, Any]) -> tuple[subprocess.Popen[str], float]:
    """Start the host; return it once its threads are released, with when that was."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    # run above the other tenants of a shared machine (root may): their load is not record's
    nice = ["nice", "-n", "-10"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(
        [*nice, sys.executable, str(HOST), json.dumps(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("start "):
        proc.kill()
        pytest.fail(f"host did not start: {line!r} {proc.communicate()[1][-3000:]}")
    return proc, float(line.split()[1])


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=SECONDS + 240)
    assert proc.returncode == 0, err[-3000:]
    done = [line for line in out.splitlines() if line.startswith("done ")]
    assert done, (out[-2000:], err[-3000:])
    return json.loads(done[0].split(" ", 1)[1])


def wanted_ids(run: str) -> set[str]:
    per_thread = CALLS // THREADS
    names = [call_id(run, t, i) for t in range(THREADS) for i in range(per_thread)]
    names += [call_id(run + "-warm", 0, i) for i in range(WARMUP)]
    return {str(call_uuid(name)) for name in names}


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_an_outage_loses_no_call_doubles_none_and_never_holds_the_caller(
    cluster: Cluster, tmp_path: Path, mode: str
) -> None:
    run = f"outage-{mode}"
    journal = tmp_path / "journal.jsonl"
    conf = {
        "url": cluster.url,
        "journal": str(journal),
        "run": run,
        "threads": THREADS,
        "calls_per_thread": CALLS // THREADS,
        "seconds": SECONDS,
        "warmup": WARMUP,
    }
    proc, started = run_host(conf)
    try:
        time.sleep(max(0.0, started + DOWN_AT - time.monotonic()))
        stopped_at = time.monotonic()
        cluster.stop(mode)
        time.sleep(max(0.0, stopped_at + OUTAGE - time.monotonic()))
        cluster.start()
        back_at = time.monotonic()
        report = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    s, rec, control = report["stats"], report["record"], report["control"]
    print(
        f"\n{mode}: {report['calls']:,} calls, down {back_at - stopped_at:.1f} s from"
        f" {stopped_at - started:.1f} s, recording ended {report['ended'] - started:.1f} s;"
        f" spilled {s['spilled']:,}, replayed {s['replayed']:,}, write failures"
        f" {s['write_failures']}, dropped {s['dropped']}"
    )
    windows = {"all": (0.0, float("inf")), "outage": (stopped_at, back_at)}
    timed = {"record": rec, "control": control}
    over = {w: {k: slow_in(t, *span) for k, t in timed.items()} for w, span in windows.items()}
    for name, w in (("record", rec), ("control", control)):
        print(
            f"{name:>8}: p50 {ms(w['p50'])}, p99 {ms(w['p99'])}, p99.9 {ms(w['p999'])},"
            f" max {ms(w['max'])}; {over['all'][name]} over 1 ms"
            f" ({over['outage'][name]} in the outage)"
        )
    quiet = control["p999"] <= QUIET
    print(f"machine quiet (control p99.9 <= {ms(QUIET)}): {quiet}")
    # the host never saw an exception nor a call refused, and nothing was dropped
    assert report["errors"] == [] and report["refused"] == 0, report["errors"][:5]
    assert report["flushed"] and s["dropped"] == 0 and s["journal_pending"] == 0, s

    # every call in the store exactly once, nothing else, and the rollups agree with the calls
    want = wanted_ids(run)
    engine = make_engine(cluster.url)
    try:
        with engine.connect() as conn:
            found = [str(i) for i in conn.execute(select(calls.c.id)).scalars()]
        doubled = [i for i, n in Counter(found).items() if n > 1]
        assert not doubled, f"{len(doubled)} calls stored twice"
        assert not (want - set(found)), f"{len(want - set(found))} calls lost"
        assert not (set(found) - want), f"{len(set(found) - want)} unknown calls"
        assert counts(cluster.url) == (len(want), len(want), len(want))
        assert_rollups_equal_the_calls(engine)
    finally:
        engine.dispose()
    # the outage was in the middle of the calls and noticed (the calls go on after the restart
    # but when a pause of the machine holds the restart up: printed above)
    assert stopped_at < report["ended"] - OUTAGE / 2, "the calls ended before the outage"
    assert s["spilled"] > 0 and s["replayed"] >= s["spilled"] and s["write_failures"] > 0, s

    # The waits. The control threads (same process, same pace, the same calls validated and
    # priced but not queued) wait what the machine, the GIL and the call's own work cost at the
    # same moment; ``record`` does that work plus the enqueue. On a quiet machine (control
    # p99.9 under QUIET) the promise is held as it is written: p99.9 of ``record`` <= 1 ms.
    if quiet:
        assert rec["p999"] <= 0.001, f"record p99.9 {ms(rec['p999'])}: {rec['slow'][:20]}"
    # The shared 2-core machine is mostly not quiet: its other tenants at a load of 4-20, the
    # control alone waited 0.4-24 ms at p99.9, no queue involved. There the promise is held
    # as what ``record`` adds to the control: no more than one call in a thousand over 1 ms
    # beyond three times the control's count, in the whole run and in the outage. Seen in 6
    # runs of this test and 7 shorter ones: record 1.2-2.2 times the control's count (its calls
    # that the garbage collector's passes fall in); with the counters' lock held across the
    # journal's fsync (a wait on the disk), 1,369 against 34 in the outage.
    for window, (begin, end) in windows.items():
        paced = min(end, started + SECONDS) - max(begin, started)  # the calls made meanwhile
        calls_in = CALLS * max(0.0, paced) / SECONDS
        n_rec, n_control = over[window]["record"], over[window]["control"]
        assert n_rec <= 3 * n_control + calls_in / 1000, (
            f"{window}: {n_rec} calls of record over 1 ms, {n_control} of the control's:"
            f" {rec['slow'][:20]}"
        )
    # The max is one sample of a pause anywhere on the machine, so it is reported, and held
    # only under what a caller waiting on the outage itself would wait: the outage (30 s) or
    # a connect's timeout (5 s, tracking.db), unless the control saw as long a pause.
    assert rec["max"] < max(5.0, control["max"] + 1.0), f"record max {ms(rec['max'])}"


def slow_in(waits: dict[str, Any], begin: float, end: float) -> int:
    """How many calls waited over 1 ms between ``begin`` and ``end`` (monotonic)."""
    return sum(begin <= t <= end for t, _ in waits["slow"])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"

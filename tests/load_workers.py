"""The callers of the load test (tests/test_load.py): each records paced calls whose ids the
test can name, and says what it saw. Separate from the test module so that ``spawn`` children
and the pre-fork master import it by name, without pytest.

    python -m tests.load_workers prefork URL JOURNAL OUT_DIR WORKERS SECONDS RATE

runs a gunicorn-like master: it configures tracking and records a call, then forks WORKERS
children that record for SECONDS at RATE calls/s each and exit as gunicorn's workers do
(``sys.exit(0)`` once their loop returns, so tracking's ``atexit`` flush runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

# the kinds of caller, the top byte of their calls' ids
KINDS = {
    "thread": 1,
    "task": 2,
    "prefork": 3,
    "mp-fork": 4,
    "mp-spawn": 5,
    "master": 6,
    "mp-forkserver": 7,
}


def call_id(kind: str, worker: int, seq: int) -> uuid.UUID:
    """The id of a worker's ``seq``-th call: unique, and known to the test without asking."""
    return uuid.UUID(int=(KINDS[kind] << 120) | (worker << 88) | seq)


@dataclass
class Seen:
    """What one caller did: how many calls it recorded, and what went wrong on its side."""

    kind: str
    worker: int
    recorded: int = 0
    not_logged: int = 0  # record() returned None
    exceptions: int = 0  # record() raised into the caller
    first_exception: str | None = None
    dropped: int = 0
    rejected: int = 0
    internal_errors: int = 0
    pid: int = 0

    def call(self) -> None:
        import tracking

        try:
            got = tracking.record(
                provider="openai",
                model="gpt-4o",
                input_tokens=1200,
                cache_read_tokens=1000,
                output_tokens=300,
                user_id=f"u_{self.worker % 50}",
                feature=self.kind,
                call_id=call_id(self.kind, self.worker, self.recorded),
            )
        except Exception as exc:  # the promise under test: never
            self.exceptions += 1
            self.first_exception = self.first_exception or repr(exc)
        else:
            self.not_logged += got is None
        self.recorded += 1

    def note_stats(self) -> None:
        """The process's counts of calls it could not queue (shared by its callers)."""
        import tracking

        stats = tracking.stats()
        self.dropped = stats.get("dropped", 0)
        self.rejected = stats.get("rejected", 0)
        self.internal_errors = stats.get("internal_errors", 0)
        self.pid = os.getpid()


def paced(seen: Seen, seconds: float, rate: float) -> Seen:
    """Record at ``rate`` calls/s for ``seconds`` (sleeping between short bursts)."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        for _ in range(10):
            seen.call()
        ahead = seen.recorded / rate - elapsed
        if ahead > 0:
            time.sleep(ahead)
    return seen


async def paced_task(seen: Seen, seconds: float, rate: float) -> Seen:
    """``paced`` as an asyncio task: it yields to the loop instead of sleeping."""
    import tracking

    started = time.monotonic()
    with tracking.attribute(team="async"):  # contextvars: each task its own block
        while (elapsed := time.monotonic() - started) < seconds:
            for _ in range(10):
                seen.call()
            await asyncio.sleep(max(0.0, seen.recorded / rate - elapsed))
    return seen


def run_tasks(tasks: int, seconds: float, rate: float) -> list[Seen]:
    """An event loop with ``tasks`` tasks recording at once (run in a thread of its own)."""

    async def main() -> list[Seen]:
        return list(
            await asyncio.gather(
                *(paced_task(Seen("task", i), seconds, rate) for i in range(tasks))
            )
        )

    return asyncio.run(main())


def write_seen(out_dir: str, seen: Seen) -> None:
    path = Path(out_dir) / f"{seen.kind}-{seen.worker}.json"
    path.write_text(json.dumps(asdict(seen)))


def read_seen(out_dir: str) -> list[Seen]:
    return [Seen(**json.loads(p.read_text())) for p in sorted(Path(out_dir).glob("*.json"))]


def mp_worker(
    kind: str, setup: tuple[str, str] | None, out_dir: str, worker: int, seconds: float, rate: float
) -> None:
    """A ``multiprocessing`` child: it records and returns, and nothing here flushes. A forked
    child records with the tracking it inherited (``setup`` None); a spawned one (or one from
    the forkserver) configures tracking first with ``setup`` (url, journal), as an app's
    start-up would."""
    import tracking

    if setup is not None:
        tracking.configure(url=setup[0], journal_path=setup[1])
    seen = paced(Seen(kind, worker), seconds, rate)
    seen.note_stats()
    write_seen(out_dir, seen)


def prefork(url: str, journal: str, out_dir: str, workers: int, seconds: float, rate: float):
    """The gunicorn-like master: configure, record once (the writer runs), fork the workers,
    wait for them. Each worker returns from its loop and leaves by ``sys.exit(0)``."""
    import tracking

    tracking.configure(url=url, journal_path=journal)
    master = Seen("master", 0)
    master.call()
    children = []
    for worker in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker, as gunicorn's Arbiter.spawn_worker runs one
            try:
                seen = paced(Seen("prefork", worker), seconds, rate)
                seen.note_stats()
                write_seen(out_dir, seen)
                sys.exit(0)
            except SystemExit:
                raise
            except BaseException:
                sys.exit(1)
        children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    master.note_stats()
    write_seen(out_dir, master)
    tracking.shutdown()
    if any(codes):
        sys.exit(f"workers exited with {codes}")


if __name__ == "__main__":
    if sys.argv[1] == "prefork":
        url, journal, out_dir, workers, seconds, rate = sys.argv[2:8]
        prefork(url, journal, out_dir, int(workers), float(seconds), float(rate))
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}")

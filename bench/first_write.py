"""The first write: from ``tracking.configure`` to a call committed in a current SQLite store.

python -m bench.first_write [--runs 15] [--against PATH]

Each run is a fresh interpreter that configures tracking on an embedded SQLite store already at
this release's schema (priced, as ``python -m tracking migrate`` leaves it), records one call
and waits until the writer has committed it. Until then every call the host records is only in
memory: a ``kill -9`` in that window loses it (tests/test_crash.py, random kills). The figure is
the median over the runs; with ``--against`` another checkout's ``tracking`` (the code before a
change) is timed in alternation with this one on the same store, so that the machine's spells
fall on both.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tracking.catalogue_store import load_catalogue_if_empty
from tracking.db import make_engine
from tracking.migrate import upgrade

HERE = Path(__file__).resolve().parent.parent
PROBE = """
import sys, time
import tracking
t = time.perf_counter()
tracking.configure(url=sys.argv[1], journal_path=sys.argv[2], flush_interval=0.01)
tracking.record(provider="openai", model="gpt-4o", input_tokens=1000, output_tokens=10)
while tracking.stats()["written"] < 1:
    time.sleep(0.001)
print((time.perf_counter() - t) * 1000)
tracking.shutdown()
"""


def current_store(folder: Path) -> str:
    url = f"sqlite:///{folder / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        load_catalogue_if_empty(conn)
    engine.dispose()
    return url


def sample_ms(tree: Path, url: str, journal: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, url, str(journal)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
    )
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--against", type=Path, help="a checkout of the code before, alternated")
    args = parser.parse_args()
    trees = {"this": HERE} | ({"against": args.against.resolve()} if args.against else {})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = current_store(folder)
        times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.runs):
            for name, tree in trees.items():
                times[name].append(sample_ms(tree, url, folder / f"{name}.jsonl"))
    for name, ms in times.items():
        print(
            f"{name} ({trees[name]}): first write {statistics.median(ms):.0f} ms median,"
            f" {min(ms):.0f}-{max(ms):.0f} ms over {len(ms)} runs"
        )


if __name__ == "__main__":
    main()

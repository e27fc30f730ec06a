"""The Users & margins page's reads: SQL time and SQL + calculations, beside the code before.

    python -m bench.margins --url URL [--before DIR] [--rounds 5] [--runs 5]
    python -m bench.margins --calls 10000000 [--before DIR]     # a fresh demo store first

Runs ``bench.app_pages.margins_sql`` (every read the page makes with its default period, the
last 30 days: accounts, each user's cost per term, the weekly cost per active user, the
worst customers' top features and models, a customer's detail, and the margins computed
from them) in a child process, ``--runs`` times after a warm-up, and reports the median of
the whole and of the time spent in the driver's ``execute`` (the SQL, rows fetched). With
``--before DIR`` (a checkout, e.g. ``git worktree add /work/before <commit>``) its own
``margins_sql`` runs the same way in a child of its own, alternating round by round, so both
see the same machine: these machines vary by up to 3x from day to day.
"""

from __future__ import annotations

import argparse
import os
import statistics
from contextlib import nullcontext
from pathlib import Path

from bench.common import fresh_pg, run_in_checkout

HERE = str(Path(__file__).resolve().parent.parent)

_CHILD = """
import json, statistics, sys, time
from sqlalchemy import event
from bench.app_pages import default_filters, margins_sql
from tracking.db import make_engine
import dashboard

engine = make_engine(sys.argv[1])
spent = [0.0]

@event.listens_for(engine, "before_cursor_execute")
def _before(conn, cursor, statement, parameters, context, executemany):
    conn.info["t0"] = time.perf_counter()

@event.listens_for(engine, "after_cursor_execute")
def _after(conn, cursor, statement, parameters, context, executemany):
    spent[0] += time.perf_counter() - conn.info["t0"]

f = default_filters()
margins_sql(engine, f)  # warm: the pool, PostgreSQL's buffers, the imports
walls, sqls = [], []
for _ in range(int(sys.argv[2])):
    spent[0] = 0.0
    started = time.perf_counter()
    margins_sql(engine, f)
    walls.append(time.perf_counter() - started)
    sqls.append(spent[0])
print(json.dumps({"wall": statistics.median(walls), "sql": statistics.median(sqls),
                  "dashboard": dashboard.__file__}))
"""


def run(directory: str, url: str, runs: int) -> dict[str, float]:
    """``margins_sql`` of ``directory``'s checkout, timed in a child process run there."""
    return run_in_checkout(_CHILD, directory, url, str(runs), package="dashboard")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a store already loaded (else a fresh demo store)")
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--before", help="a checkout whose margins_sql to time alternately")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per child")
    args = parser.parse_args()
    contenders = [("this code", HERE)]
    if args.before:
        contenders.append(("before", os.path.abspath(args.before)))
    with nullcontext(args.url) if args.url else fresh_pg(catalogue=True) as url:
        if not args.url:
            from dashboard import demo
            from tracking.db import make_engine

            engine = make_engine(url)
            demo.load(engine, args.calls, args.days, demo.DEFAULT_SEED)
            engine.dispose()
        found: dict[str, list[dict[str, float]]] = {name: [] for name, _ in contenders}
        for i in range(args.rounds):
            for name, directory in contenders if i % 2 == 0 else contenders[::-1]:
                found[name].append(run(directory, url, args.runs))
                last = found[name][-1]
                print(
                    f"round {i + 1} {name:<10} SQL {last['sql'] * 1000:7.1f} ms"
                    f"   SQL + calculations {last['wall'] * 1000:7.1f} ms",
                    flush=True,
                )
        for name, rows in found.items():
            sql = sorted(r["sql"] * 1000 for r in rows)
            wall = sorted(r["wall"] * 1000 for r in rows)
            print(
                f"{name:<10} SQL median {statistics.median(sql):7.1f} ms"
                f" (range {sql[0]:.0f}-{sql[-1]:.0f});"
                f" SQL + calculations {statistics.median(wall):7.1f} ms"
                f" (range {wall[0]:.0f}-{wall[-1]:.0f})"
            )


if __name__ == "__main__":
    main()

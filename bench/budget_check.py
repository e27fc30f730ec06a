"""Budget checks: the host thread's time per ``tracking.check_budget``, and per recorded call's
addition to the budgets in memory, with N budgets loaded, beside references timed in the same
rounds (a dict look-up, a ``tracking.attribute`` block entered and left).

Each sample times a batch of 100 calls (``perf_counter_ns``) and divides (an addition's figure
includes a ``next()`` over calls made beforehand, each with an id of its own); the variants take
turns, round after round, so a slow spell of the machine falls on all of them alike. The
budgets: N-2 for users ``u_0``..., one for a feature, one for a tag; the "apply" check falls
under three of them (a user's, the feature's, the tag's), the "none applies" one under none.
Goal (issue 18): at most 2 µs median.

    python -m bench.budget_check [--budgets 10 100 1000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import tracking
from bench.common import fresh_pg
from tracking import client
from tracking.budget_guard import BudgetGuard
from tracking.budget_store import Budget, add_budget
from tracking.db import make_engine
from tracking.events import CallEvent
from tracking.ratelog import RateLimitedLog

BATCH = 100
SAMPLES = 20  # batches per variant per round


def per_call_ns(body: Callable[[], object]) -> float:
    clock = time.perf_counter_ns
    started = clock()
    for _ in range(BATCH):
        body()
    return (clock() - started) / BATCH


def load_budgets(url: str, n: int) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        add_budget(conn, Budget("chat", Decimal(10**6), feature="chat", hard=True), "bench")
        add_budget(
            conn, Budget("growth", Decimal(10**6), tag_key="team", tag_value="growth"), "bench"
        )
        for i in range(n - 2):
            add_budget(conn, Budget(f"user {i}", Decimal(1000), user_id=f"u_{i}"), "bench")
    engine.dispose()


def measure(url: str, rounds: int) -> dict[str, list[float]]:
    """Per-round medians of every variant, the variants alternating within each round."""
    lookup = {("u_5", "chat"): 1}
    now = datetime.now(UTC)
    # a call is added once per id: every timed addition gets a call of its own, made beforehand
    events = iter(
        [
            CallEvent(
                id=uuid.uuid4(),
                occurred_at=now,
                provider="openai",
                model="gpt-4o",
                user_id="u_5",
                feature="chat",
                tags={"team": "growth"},
                cost_usd=Decimal("0.001"),
                priced=True,
            )
            for _ in range(2 * rounds * SAMPLES * BATCH)
        ]
    )
    guard = client.get().budget_guard()  # type: ignore[union-attr]
    unloaded = BudgetGuard(lambda: None, 3600, RateLimitedLog())  # type: ignore[arg-type, return-value]

    def attribute_block() -> None:
        with tracking.attribute(user_id="u_5"):
            pass

    variants: dict[str, Callable[[], object]] = {
        "reference: dict look-up": lambda: lookup.get(("u_5", "chat")),
        "reference: attribute block enter+exit": attribute_block,
        "check_budget, 3 budgets apply": lambda: tracking.check_budget(
            user_id="u_5", feature="chat", team="growth"
        ),
        "check_budget, none applies": lambda: tracking.check_budget(user_id="nobody"),
        "a recorded call added (to 3 budgets)": lambda: guard.add(next(events)),
        "a recorded call, no budget loaded": lambda: unloaded.add(next(events)),
    }
    found: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, body in variants.items():
            found[name].append(statistics.median(per_call_ns(body) for _ in range(SAMPLES)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    for n in args.budgets:
        with fresh_pg() as url, tempfile.TemporaryDirectory() as tmp:
            load_budgets(url, n)
            tracking.configure(
                url=url, journal_path=f"{tmp}/journal.jsonl", budget_refresh_interval=3600
            )
            assert tracking.refresh_budgets()
            loaded = tracking.stats()["refreshers"]["budgets"]["budgets"]
            results = measure(url, args.rounds)
            tracking.shutdown()
        print(f"\n{loaded} budgets loaded ({args.rounds} rounds; median of the round medians)")
        for name, medians in results.items():
            low, high = min(medians), max(medians)
            print(
                f"  {name:<40} {statistics.median(medians) / 1000:5.2f} µs"
                f"   (rounds {low / 1000:.2f}-{high / 1000:.2f})"
            )


if __name__ == "__main__":
    main()

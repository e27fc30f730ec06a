"""What-if: a 12-month simulation with 1,000 bootstrap draws (``dashboard.economics.whatif``).

    python -m bench.whatif [--lines 300] [--days 28] [--runs 7]

A synthetic baseline like a busy app's: ``--lines`` (feature, model, plan) lines over 6 models
and ``--days`` days of cost, with every lever set (price changes, a move, growth, usage, cache
hits, output length). Timed, alternating within each run: ``simulate`` with 1,000 draws (the
goal: at most 300 ms) and, as the reference, the same simulation without the band (draws=0,
the exact money alone), so the line shows what the bootstrap adds. Medians of ``--runs``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from decimal import Decimal
from fractions import Fraction

from dashboard.economics.whatif import Baseline, BaselineLine, Levers, Move, simulate

MODELS = [f"openai/m{i}" for i in range(6)]


def make(lines: int, days: int) -> tuple[Baseline, dict[str, dict[str, Fraction]]]:
    rng = random.Random(7)
    rates = {
        key: {
            "input_tokens": Fraction(rng.randint(1, 300), 100_000_000),
            "output_tokens": Fraction(rng.randint(4, 1200), 100_000_000),
            "cache_read_tokens": Fraction(rng.randint(0, 30), 100_000_000),
        }
        for key in MODELS
    }
    made = []
    for i in range(lines):
        key = MODELS[i % len(MODELS)]
        calls = rng.randint(100, 100_000)
        inp, out = calls * rng.randint(200, 4000), calls * rng.randint(50, 800)
        cost = inp * rates[key]["input_tokens"] + out * rates[key]["output_tokens"]
        made.append(
            BaselineLine(
                f"f{i % 40}", "openai", key.split("/")[1], f"p{i % 4}", calls, inp, out,
                cache_read_tokens=inp // 10, cost_nanos=round(cost * 10**9),
            )
        )  # fmt: skip
    daily = tuple(rng.randint(10**9, 5 * 10**9) for _ in range(days))
    return Baseline(tuple(made), daily, {f"p{i}": Decimal(1000 * (i + 1)) for i in range(4)}), rates


LEVERS = Levers(
    horizon_months=12,
    price_pct={"openai/m0": Decimal(10), "openai/m3": Decimal(-5)},
    moves=(Move("f1", "openai/m2", None, Decimal("1.1"), Decimal("0.9")),),
    user_growth_pct=Decimal(4),
    usage_per_user_pct=Decimal(10),
    cache_hit_pct=Decimal(30),
    output_length_pct=Decimal(-10),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    baseline, rates = make(args.lines, args.days)
    times: dict[str, list[float]] = {"1,000 draws": [], "no band (reference)": []}
    for run in range(args.runs):
        order = [1000, 0] if run % 2 == 0 else [0, 1000]
        for draws in order:
            start = time.perf_counter()
            simulate(baseline, LEVERS, rates, draws=draws, seed=run)
            elapsed = (time.perf_counter() - start) * 1000
            times["1,000 draws" if draws else "no band (reference)"].append(elapsed)
    print(f"{args.lines} lines, {args.days} days, 12 months, {args.runs} runs alternating")
    for name, samples in times.items():
        print(f"  {name}: median {statistics.median(samples):.1f} ms (max {max(samples):.1f})")


if __name__ == "__main__":
    main()

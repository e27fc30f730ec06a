"""Import cost: ``import tracking`` in a fresh interpreter, beside ``import sqlalchemy`` alone.

python -m bench.import_time [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

PROBE = (
    "import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"
)


def median_ms(module: str, runs: int) -> float:
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", PROBE.format(module=module)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    base = median_ms("sqlalchemy", args.runs)
    ours = median_ms("tracking", args.runs)
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tracking; print(sorted(m for m in "
            "('pandas', 'streamlit', 'genai_prices', 'openai', 'anthropic', 'alembic') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"import sqlalchemy : {base:6.0f} ms (median of {args.runs} fresh interpreters)")
    print(f"import tracking   : {ours:6.0f} ms (+{ours - base:.0f} ms)")
    print(f"heavy modules loaded by import tracking: {heavy}")


if __name__ == "__main__":
    main()

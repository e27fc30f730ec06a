"""Import cost: ``import tracking`` in a fresh interpreter, beside ``import sqlalchemy`` alone.

python -m bench.import_time [--runs 15]

The two are timed alternately (one of each per run), so that a neighbour's load on the machine
falls on both; it prints each median, their ratio (the figure bench/README.md quotes) and the
heavy modules ``import tracking`` loads beyond what ``import sqlalchemy`` loads itself.

Bytecode matters: an installed package imports from its ``.pyc`` files, but a checkout run with
``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__`` compiles tracking's source at every import
(about 17 ms here) while sqlalchemy's installed bytecode is read. The last line says which case
was measured; figures of the two cases do not compare.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys

PROBE = (
    "import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"
)
# what a host should not pay for at import: other libraries, the PostgreSQL dialect and drivers
HEAVY = (
    "asyncio", "sqlalchemy.dialects.postgresql", "sqlalchemy.connectors.asyncio", "psycopg2",
    "numpy", "pandas", "streamlit", "genai_prices", "openai", "anthropic", "alembic",
)  # fmt: skip
LOADED = (
    "import sys; import sqlalchemy; base = set(sys.modules); import tracking; "
    "print(__import__('json').dumps(sorted(set(sys.modules) - base)))"
)


def sample_ms(module: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout)


def heavy_modules() -> list[str]:
    """The HEAVY modules (or their submodules) that ``import tracking`` adds to sqlalchemy's."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED], capture_output=True, text=True, check=True
    )
    added = json.loads(done.stdout)
    return sorted({h for h in HEAVY for m in added if m == h or m.startswith(h + ".")})


def bytecode_cached() -> bool:
    """Whether ``import tracking`` reads a cached .pyc (as an installed package does)."""
    spec = importlib.util.find_spec("tracking")
    assert spec is not None and spec.origin is not None
    return os.path.exists(importlib.util.cache_from_source(spec.origin))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    base: list[float] = []
    ours: list[float] = []
    for _ in range(args.runs):
        base.append(sample_ms("sqlalchemy"))
        ours.append(sample_ms("tracking"))
    b, o = statistics.median(base), statistics.median(ours)
    print(f"import sqlalchemy : {b:6.0f} ms (median of {args.runs} fresh interpreters)")
    print(f"import tracking   : {o:6.0f} ms (+{o - b:.0f} ms)")
    print(f"ratio             : {o / b:6.2f}x")
    print(f"heavy modules loaded by import tracking beyond sqlalchemy's: {heavy_modules()}")
    cached = "cached .pyc" if bytecode_cached() else "compiled from source at each import"
    print(f"tracking's bytecode: {cached}")


if __name__ == "__main__":
    main()

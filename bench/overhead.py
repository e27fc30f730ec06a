"""Overhead: the host thread's time per tracked call, median microseconds.

``record`` and ``track`` are timed one call at a time (perf_counter_ns around each), with the
writer running and the prices loaded, beside the same loop calling a function that does nothing.
The store is a fresh PostgreSQL database, so the writer's work competes for the GIL as in a host.

    python -m bench.overhead [--calls 20000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import tracking
from bench.common import finish_tracking, fresh_pg, start_tracking


def untracked(provider: str, model: str, **fields: object) -> None:
    return None


def timed(loop_body, n: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for i in range(n):
        started = clock()
        loop_body(i)
        samples.append(clock() - started)
    return samples


def report(name: str, samples: list[int], base: float | None = None) -> float:
    median = statistics.median(samples) / 1000
    p99 = statistics.quantiles(samples, n=100)[98] / 1000
    extra = f"   (+{median - base:.1f} µs over untracked)" if base is not None else ""
    print(f"{name:<34} median {median:6.1f} µs   p99 {p99:7.1f} µs{extra}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    n = args.calls
    with fresh_pg() as url, tempfile.TemporaryDirectory() as tmp:
        start_tracking(url, tmp, queue_size=4 * n)

        def plain(i: int) -> None:
            untracked("openai", "gpt-4o", input_tokens=1200, output_tokens=300)

        def record(i: int) -> None:
            tracking.record(
                provider="openai",
                model="gpt-4o",
                input_tokens=1200,
                cache_read_tokens=1000,
                output_tokens=300,
            )

        def track(i: int) -> None:
            with tracking.track(provider="openai", model="whisper-1") as call:
                call.set_usage(audio_seconds=330)

        with tracking.attribute(user_id="u_42", feature="summarize", team="growth"):
            timed(record, 2000)  # warm-up
            base = report("untracked function call", timed(plain, n))
            report("tracking.record (priced, tagged)", timed(record, n), base)
            report("tracking.track + set_usage", timed(track, n), base)
        finish_tracking()


if __name__ == "__main__":
    main()

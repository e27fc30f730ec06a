"""Demo data: a realistic, deterministic history of AI calls, priced from the store's prices.

    python -m dashboard.demo [--url URL] [--calls 50000] [--days 60] [--seed 7] [--if-empty]

Users have heavy-tailed usage; features use their own models; traffic has a weekly rhythm and
grows over the period; a few calls fail, many hit the prompt cache, and one day has a spike.
"""

from __future__ import annotations

import argparse
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from tracking.config import resolve_url
from tracking.db import describe_url, make_engine
from tracking.events import CallEvent
from tracking.migrate import upgrade
from tracking.pricing import load_price_book
from tracking.schema import call_ids
from tracking.store import write_batch
from tracking.writer import price_event


@dataclass(frozen=True)
class Feature:
    name: str
    provider: str
    model: str
    operation: str
    weight: float


FEATURES = (
    Feature("chat", "openai", "gpt-4o", "chat", 0.34),
    Feature("chat", "anthropic", "claude-3-5-sonnet-20241022", "chat", 0.12),
    Feature("summarize", "anthropic", "claude-3-5-haiku-20241022", "chat", 0.16),
    Feature("search", "google", "gemini-1.5-flash", "chat", 0.12),
    Feature("transcribe", "openai", "whisper-1", "transcription", 0.06),
    Feature("speech", "openai", "tts-1", "speech", 0.05),
    Feature("embeddings", "openai", "text-embedding-3-small", "embedding", 0.15),
)
APP_CALLS, APP_DAYS, DEFAULT_SEED = 50_000, 60, 7  # what the app's button and `make run` load
ERRORS = ("RateLimitError", "APITimeoutError", "BadRequestError", "InternalServerError")


def _usage(feature: Feature, rng: random.Random) -> dict[str, object]:
    if feature.operation == "transcription":
        return {"units": {"audio_seconds": round(rng.uniform(5, 900), 1)}}
    if feature.operation == "speech":
        return {"units": {"characters": rng.randint(80, 4000)}}
    if feature.operation == "embedding":
        return {"input_tokens": rng.randint(20, 8000)}
    prompt = int(rng.lognormvariate(7.0, 0.9)) + 50
    cached = int(prompt * rng.uniform(0.5, 0.9)) if rng.random() < 0.35 else 0
    output = int(rng.lognormvariate(5.3, 0.8)) + 5
    usage: dict[str, object] = {
        "input_tokens": prompt,
        "cache_read_tokens": cached,
        "output_tokens": output,
    }
    if feature.model.startswith("claude") and rng.random() < 0.1:
        usage["cache_write_tokens"] = min(prompt - cached, rng.randint(500, 3000))
    return usage


def generate(calls: int, days: int, seed: int, end: datetime | None = None) -> Iterator[CallEvent]:
    """``calls`` events over the ``days`` days before ``end``, the same for the same seed."""
    rng = random.Random(seed)
    end = (end or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    users = [f"user_{i:04d}" for i in range(max(20, calls // 400))]
    user_weights = [1 / (rank + 1) ** 1.2 for rank in range(len(users))]
    user_features = {u: rng.sample(FEATURES, rng.randint(1, 4)) for u in users}
    user_plan = {u: rng.choices(("free", "pro", "team"), weights=(6, 3, 1))[0] for u in users}
    spike_day = rng.randrange(days // 3, days) if days > 3 else -1
    # daily volume: growth over the period, quieter weekends, one spike day
    day_weights = []
    for d in range(days):
        weekday = (start + timedelta(days=d)).weekday()
        weight = (1 + 1.5 * d / max(days, 1)) * (0.55 if weekday >= 5 else 1.0)
        day_weights.append(weight * (4 if d == spike_day else 1))
    day_picks = rng.choices(range(days), weights=day_weights, k=calls)
    user_picks = rng.choices(users, weights=user_weights, k=calls)
    for day, user in zip(sorted(day_picks), user_picks, strict=True):
        hour = min(23, max(0, int(rng.gauss(14, 4))))
        occurred = start + timedelta(days=day, hours=hour, seconds=rng.randrange(3600))
        feature = rng.choices(user_features[user], weights=[f.weight for f in user_features[user]])[
            0
        ]
        failed = rng.random() < (0.05 if day == spike_day else 0.015)
        usage = _usage(feature, rng)
        if failed:
            usage = {k: v for k, v in usage.items() if k == "input_tokens"}
        yield CallEvent(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            occurred_at=occurred,
            provider=feature.provider,
            model=feature.model,
            operation=feature.operation,
            user_id=user,
            feature=feature.name,
            status="error" if failed else "ok",
            error_type=rng.choice(ERRORS) if failed else None,
            duration_ms=int(rng.lognormvariate(6.5, 0.6)),
            tags={"plan": user_plan[user], "demo": True},
            environment="demo",
            **usage,  # type: ignore[arg-type]
        )


def load(
    engine: Engine,
    calls: int,
    days: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 10_000,
) -> int:
    """Write the demo history into a migrated store; returns how many calls were new."""
    with engine.connect() as conn:
        book = load_price_book(conn)
    written = 0
    batch: list[CallEvent] = []
    known: set[tuple[int, int]] = set()
    for event in generate(calls, days, seed):
        price_event(book, event)
        batch.append(event)
        if len(batch) >= batch_size:
            with engine.begin() as conn:
                written += write_batch(conn, batch, known)
            batch.clear()
            if progress:
                progress(written, calls)
    if batch:
        with engine.begin() as conn:
            written += write_batch(conn, batch, known)
    if progress:
        progress(written, calls)
    return written


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(call_ids)).scalar_one() == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.demo", description=__doc__)
    parser.add_argument("--url", help="database URL (default: as tracking.configure)")
    parser.add_argument("--calls", type=int, default=APP_CALLS)
    parser.add_argument("--days", type=int, default=APP_DAYS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--if-empty", action="store_true", help="only when no call is stored")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.days < 1:
        parser.error("--calls and --days must be at least 1")
    engine = make_engine(resolve_url(args.url))
    upgrade(engine)
    if args.if_empty and not is_empty(engine):
        print(f"{describe_url(engine.url)} already has calls: no demo data loaded.")
        return 0
    written = load(engine, args.calls, args.days, args.seed)
    print(f"Loaded {written:,} demo calls over {args.days} days into {describe_url(engine.url)}.")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

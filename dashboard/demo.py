"""Demo data: a realistic, deterministic history of AI calls, priced from the store's prices.

    python -m dashboard.demo [--url URL] [--calls 50000] [--days 60] [--seed 7] [--if-empty]

Users on free, pro and team plans have heavy-tailed (Zipf-like) usage; each uses a few features,
and each feature its own model; traffic peaks in the afternoon, dips at weekends and grows over
the period; a few calls fail, many chat calls hit the prompt cache, and one day has a spike of
traffic and errors. The same seed, size and end time give the same calls (ids included).

The users belong to customers (``dashboard.demo_accounts``): plans, subscription terms with
seats, discounts and custom prices, churned and newly signed-up customers (who call only while
subscribed) and usage revenue, loaded with the calls. Loading again stores nothing twice.

Speed: calls are generated a day at a time as numpy columns, priced column-wise by
``tracking.pricing_columns`` and written as COPY text by ``tracking.pg_copy_columns`` (the
engine's rules and ``copy_line``'s, column by column). On PostgreSQL each chunk goes
through the writer's COPY path (``tracking.pg_copy.write_new_calls``: ids guarded, rollups
upserted) on a second thread while the next chunk is generated; SQLite takes ``write_batch``.
"""

from __future__ import annotations

import argparse
import math
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from dashboard import demo_accounts
from dashboard.accounts import Written, load_terms, write_accounts
from tracking.config import resolve_url
from tracking.db import describe_url, make_engine
from tracking.events import CallEvent
from tracking.partitions import Month, ensure_months, month_of
from tracking.pg_copy_columns import Coded, Ints, copy_text_of_columns
from tracking.pricing import PriceBook, load_price_book
from tracking.pricing_columns import UnitCounts, quote_columns, take
from tracking.schema import call_ids
from tracking.sqltypes import from_nanos
from tracking.store import write_batch


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
PLANS = ("free", "pro", "team")
APP_CALLS, APP_DAYS, DEFAULT_SEED = 50_000, 60, 7  # what the app's button and `make run` load
ERRORS = ("RateLimitError", "APITimeoutError", "BadRequestError", "InternalServerError")
CHUNK = 100_000  # calls per write
WRITERS = 2  # PostgreSQL connections writing at once
INT_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


# --- generation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """Who calls what: fixed for a seed, before any call is drawn."""

    user_p: np.ndarray  # probability of each user making a call
    feature_cum: np.ndarray  # users x features: cumulative weights of the features a user uses
    plan: np.ndarray  # index into PLANS per user
    day_counts: np.ndarray  # calls per day
    spike_day: int
    customers: tuple[demo_accounts.DemoCustomer, ...] = ()  # whose users they are
    active: np.ndarray | None = None  # users x days: subscribed that day (None: every day)


def population(
    calls: int, days: int, rng: np.random.Generator, start: datetime, today_hours: int
) -> Population:
    n_users = max(20, calls // 400)
    user_p = 1 / np.arange(1, n_users + 1) ** 1.2
    user_p /= user_p.sum()
    weights = np.array([f.weight for f in FEATURES])
    uses = np.zeros((n_users, len(FEATURES)))
    for u in range(n_users):
        picked = rng.choice(len(FEATURES), size=int(rng.integers(1, 5)), replace=False)
        uses[u, picked] = weights[picked]
    plan = rng.choice(len(PLANS), size=n_users, p=[0.6, 0.3, 0.1])
    spike_day = int(rng.integers(days // 3, days - 1)) if days > 3 else -1
    day_w = np.array(
        [
            (1 + 1.5 * d / days)
            * (0.55 if (start + timedelta(days=d)).weekday() >= 5 else 1.0)
            * (4 if d == spike_day else 1)
            * (today_hours / 24 if d == days - 1 else 1)  # today is not over yet
            for d in range(days)
        ]
    )
    day_counts = rng.multinomial(calls, day_w / day_w.sum())
    return Population(user_p, np.cumsum(uses, axis=1), plan, day_counts, spike_day)


def _ids(rng: np.random.Generator, occurred: np.ndarray) -> np.ndarray:
    """Time-ordered UUIDs (version 7, as ``tracking`` makes them) as 32 hex digits: the call's
    millisecond, then bits from the seeded generator. Ordered ids keep PostgreSQL's id index
    inserts sequential (random ones made a 10M load markedly slower)."""
    n = len(occurred)
    millis = occurred.astype("datetime64[ms]").astype(np.int64) + rng.integers(0, 1000, n)
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    for i in range(6):
        raw[:, i] = (millis >> (8 * (5 - i))) & 0xFF
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return np.frombuffer(raw.tobytes().hex().encode(), dtype="S32").astype("U32")


def day_frame(
    pop: Population, day: int, start: datetime, rng: np.random.Generator, hours: int = 24
) -> pd.DataFrame:
    """The calls of one day (its first ``hours`` hours) as columns, in time order."""
    n = int(pop.day_counts[day])
    p = pop.user_p
    if pop.active is not None:  # no calls before a customer signed up or after it churned
        p = p * pop.active[:, day]
        p = p / p.sum()
    user = rng.choice(len(p), size=n, p=p)
    cum = pop.feature_cum[user]
    feature = (cum < rng.random(n)[:, None] * cum[:, -1:]).sum(axis=1)
    hour = np.clip(np.rint(rng.normal(14, 4, n)), 0, 23).astype(np.int64)
    late = hour >= hours  # today: nothing after the current hour
    hour[late] = rng.integers(0, max(1, hours), int(late.sum()))
    seconds = np.sort(hour * 3600 + rng.integers(0, 3600, n))
    base = np.datetime64(start.replace(tzinfo=None), "s") + np.timedelta64(day, "D")
    occurred = base + seconds.astype("timedelta64[s]")
    failed = rng.random(n) < (0.05 if day == pop.spike_day else 0.015)

    op = np.array([f.operation for f in FEATURES])[feature]
    chat, emb = op == "chat", op == "embedding"
    prompt = rng.lognormal(7.0, 0.9, n).astype(np.int64) + 50
    cached = np.where(rng.random(n) < 0.35, (prompt * rng.uniform(0.5, 0.9, n)).astype(np.int64), 0)
    output = rng.lognormal(5.3, 0.8, n).astype(np.int64) + 5
    claude = np.char.startswith(np.array([f.model for f in FEATURES])[feature], "claude")
    writes = np.where(
        claude & (rng.random(n) < 0.1), np.minimum(prompt - cached, rng.integers(500, 3001, n)), 0
    )
    emb_tokens = rng.integers(20, 8001, n)
    audio = np.round(rng.uniform(5, 900, n), 1)
    chars = rng.integers(80, 4001, n)
    duration = rng.lognormal(6.5, 0.6, n).astype(np.int64)
    error = rng.integers(0, len(ERRORS), n)

    ok = ~failed
    frame = pd.DataFrame(
        {
            "id": _ids(rng, occurred),
            "occurred_at": occurred,
            "feature_ix": feature,
            "user_ix": user,
            "failed": failed,
            "input_tokens": _nullable(np.where(emb, emb_tokens, prompt), chat | emb),
            "cache_read_tokens": _nullable(cached, chat & ok),
            "cache_write_tokens": _nullable(writes, chat & ok & (writes > 0)),
            "output_tokens": _nullable(output, chat & ok),
            "audio_seconds": np.where((op == "transcription") & ok, audio, np.nan),
            "characters": np.where((op == "speech") & ok, chars, -1),
            "duration_ms": duration,
            "error_ix": np.where(failed, error, -1),
        }
    )
    return frame


def _nullable(values: np.ndarray, present: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(values.astype(np.int64), ~present)


def frames(
    calls: int, days: int, seed: int, end: datetime | None = None
) -> Iterator[tuple[pd.DataFrame, Population]]:
    """Day by day, the demo calls of the ``days`` calendar days (UTC) up to ``end``, today
    included up to its current hour. The same seed and ``end`` (to the hour) give the same calls."""
    end = (end or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = datetime.combine(end.date() - timedelta(days=days - 1), datetime.min.time(), UTC)
    rng = np.random.default_rng([seed, end.toordinal(), end.hour])
    pop = population(calls, days, rng, start, max(1, end.hour))
    # the customers from a generator of their own: the calls' draws stay as they were
    accounts_rng = np.random.default_rng([seed, end.toordinal(), end.hour, 1])
    customers = demo_accounts.customers_for(pop.plan, PLANS, start.date(), days, accounts_rng)
    active = demo_accounts.activity(customers, len(pop.user_p), days)
    pop = replace(pop, customers=customers, active=active)
    for day in range(days):
        if pop.day_counts[day]:
            hours = max(1, end.hour) if day == days - 1 else 24
            yield day_frame(pop, day, start, rng, hours), pop


# --- pricing -----------------------------------------------------------------------------------


def usage_columns(frame: pd.DataFrame) -> dict[str, UnitCounts]:
    """The frame's billable counts for the engine's column-wise pricing (audio in tenths)."""
    cols = {name: UnitCounts(*_counts(frame[name].array)) for name in INT_COLUMNS}
    audio = frame["audio_seconds"].to_numpy()
    cols["audio_seconds"] = UnitCounts(
        np.nan_to_num(np.rint(audio * 10)).astype(np.int64), ~np.isnan(audio), scale=10
    )
    chars = frame["characters"].to_numpy()
    cols["characters"] = UnitCounts(np.maximum(chars, 0), chars >= 0)
    return cols


def price_frame(book: PriceBook, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(cost in nano-dollars or -1 when unpriced, price version id or -1) for every call."""
    nanos = np.full(len(frame), -1, dtype=np.int64)
    versions = np.full(len(frame), -1, dtype=np.int64)
    usage = usage_columns(frame)
    occurred = frame["occurred_at"].to_numpy()
    feature_ix = frame["feature_ix"].to_numpy()
    for ix, f in enumerate(FEATURES):
        rows = np.flatnonzero(feature_ix == ix)
        if len(rows):
            nanos[rows], versions[rows] = quote_columns(
                book, f.provider, f.model, occurred[rows], take(usage, rows)
            )
    return nanos, versions


# --- writing ------------------------------------------------------------------------------------


def _optional(arr: pd.arrays.IntegerArray) -> list[int | None]:
    values, present = _counts(arr)
    return [int(v) if p else None for v, p in zip(values.tolist(), present.tolist(), strict=True)]


def _counts(arr: pd.arrays.IntegerArray) -> tuple[np.ndarray, np.ndarray]:
    """A nullable column as (whole numbers, 0 where missing; present mask)."""
    return np.asarray(arr.fillna(0), dtype=np.int64), ~np.asarray(arr.isna())


def _units(frame: pd.DataFrame) -> list[dict[str, int | float] | None]:
    """Each call's other units: {"audio_seconds": 12.5}, {"characters": 300} or None."""
    return [
        {"audio_seconds": a} if not math.isnan(a) else {"characters": c} if c >= 0 else None
        for a, c in zip(frame["audio_seconds"].tolist(), frame["characters"].tolist(), strict=True)
    ]


def events(
    frame: pd.DataFrame,
    pop: Population | None = None,
    nanos: np.ndarray | None = None,
    versions: np.ndarray | None = None,
) -> list[CallEvent]:
    """The frame's rows as CallEvents (the SQLite path), priced when costs are given."""
    n = len(frame)
    if nanos is None or versions is None:
        nanos = versions = np.full(n, -1)
    costs = [None if v < 0 else from_nanos(v) for v in nanos.tolist()]
    priced_by = [None if c is None else v for c, v in zip(costs, versions.tolist(), strict=True)]
    tokens = zip(*(_optional(frame[name].array) for name in INT_COLUMNS), strict=True)
    rows = zip(
        *(frame[name].tolist() for name in ("feature_ix", "id", "user_ix", "failed", "error_ix")),
        frame["duration_ms"].tolist(),
        frame["occurred_at"].dt.tz_localize(UTC).dt.to_pydatetime().tolist(),
        tokens,
        _units(frame),
        costs,
        priced_by,
        strict=True,
    )
    return [
        CallEvent(
            id=uuid.UUID(hex=hexid),
            occurred_at=moment,
            provider=FEATURES[fx].provider,
            model=FEATURES[fx].model,
            operation=FEATURES[fx].operation,
            user_id=f"user_{user:04d}",
            feature=FEATURES[fx].name,
            status="error" if failed else "ok",
            error_type=ERRORS[error] if failed else None,
            duration_ms=duration,
            units=unit,
            cost_usd=cost,
            cost_source="computed" if cost is not None else None,
            price_version_id=version,
            tags={"plan": PLANS[pop.plan[user]], "demo": True} if pop else None,
            environment="demo",
            priced=True,
            **dict(zip(INT_COLUMNS, counts, strict=True)),
        )
        for fx, hexid, user, failed, error, duration, moment, counts, unit, cost, version in rows
    ]


def copy_text(frame: pd.DataFrame, pop: Population, nanos: np.ndarray, versions: np.ndarray) -> str:
    """The frame in COPY's text format: what ``tracking.pg_copy.copy_text`` makes of its events."""
    feature = frame["feature_ix"].to_numpy()
    failed = frame["failed"].to_numpy()
    user = frame["user_ix"].to_numpy()
    priced = nanos >= 0

    def of_feature(attribute: str) -> Coded:
        return Coded(feature, [getattr(f, attribute) for f in FEATURES])

    columns = {
        "id": frame["id"].to_numpy(),
        "occurred_at": frame["occurred_at"].to_numpy(),
        "duration_ms": Ints(frame["duration_ms"].to_numpy()),
        "provider": of_feature("provider"),
        "model": of_feature("model"),
        "operation": of_feature("operation"),
        "user_id": Coded(user, [f"user_{u:04d}" for u in range(len(pop.user_p))]),
        "feature": of_feature("name"),
        "status": Coded(failed.astype(np.int64), ["ok", "error"]),
        "error_type": Coded(np.where(failed, frame["error_ix"].to_numpy(), -1), ERRORS),
        **{name: Ints(*_counts(frame[name].array)) for name in INT_COLUMNS},
        "units": np.array(_units(frame), dtype=object),
        "batch": False,
        "cost_usd": Ints(nanos, priced),
        "cost_source": Coded(np.where(priced, 0, -1), ["computed"]),
        "price_version_id": Ints(versions, priced),
        "tags": Coded(pop.plan[user], [{"plan": p, "demo": True} for p in PLANS]),
        "environment": "demo",
    }
    return copy_text_of_columns(len(frame), columns)


class _PostgresSink:
    """Writes COPY texts on worker threads, one transaction each, through the writer's path.

    Two writers keep both of PostgreSQL's cores busy while this thread generates the next chunk
    (measured on 1M calls: 24.6 s with one, see bench/README.md for two). The months' partitions
    are made up front so that the writers never race to create one.
    """

    def __init__(self, engine: Engine, months: set[Month], workers: int = WRITERS) -> None:
        self.engine = engine
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-copy")
        self.pending: deque[tuple[Future[int], int]] = deque()
        with engine.begin() as conn:
            ensure_months(conn, months)

    def put(self, text: str, calls: int) -> Iterator[tuple[int, int]]:
        """Queue a chunk; yields (written, calls) of chunks that finished meanwhile."""
        if len(self.pending) >= self.workers:
            yield from self.drain(1)
        self.pending.append((self.pool.submit(self._write, text), calls))

    def drain(self, at_most: int | None = None) -> Iterator[tuple[int, int]]:
        while self.pending and (at_most is None or at_most > 0):
            future, calls = self.pending.popleft()
            yield future.result(), calls
            at_most = None if at_most is None else at_most - 1

    def _write(self, text: str) -> int:
        from tracking.pg_copy import write_new_calls

        with self.engine.begin() as conn:
            return write_new_calls(conn, text)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _months(days: int, end: datetime | None) -> set[Month]:
    end = end or datetime.now(UTC)
    return {month_of(end - timedelta(days=d)) for d in range(days + 2)}


def load(
    engine: Engine,
    calls: int,
    days: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
    end: datetime | None = None,
) -> int:
    """Write the demo history into a migrated store; returns how many calls were new.

    ``progress(done, total)`` is called on the calling thread (Streamlit needs that).
    """
    with engine.connect() as conn:
        book = load_price_book(conn)
    end = end or datetime.now(UTC)
    sink = (
        _PostgresSink(engine, _months(days, end)) if engine.dialect.name == "postgresql" else None
    )
    written = done = 0
    pop: Population | None = None
    calls_of: dict[int, dict[date, int]] = {}  # user -> month -> calls: whose accounts to write

    def report(finished: Iterator[tuple[int, int]]) -> None:
        nonlocal written, done
        for new, size in finished:
            written += new
            done += size
            if progress:
                progress(done, calls)

    try:
        for frame, pop in frames(calls, days, seed, end):
            _count_calls(frame, calls_of)
            for lo in range(0, len(frame), CHUNK):
                chunk = frame.iloc[lo : lo + CHUNK].reset_index(drop=True)
                nanos, versions = price_frame(book, chunk)
                if sink is not None:
                    report(sink.put(copy_text(chunk, pop, nanos, versions), len(chunk)))
                    continue
                with engine.begin() as conn:
                    new = write_batch(conn, events(chunk, pop, nanos, versions))
                report(iter([(new, len(chunk))]))
        if sink is not None:
            report(sink.drain())
    finally:
        if sink is not None:
            sink.close()
    if pop is not None:
        write_demo_accounts(engine, pop, days, end, calls_of)
    return written


def _count_calls(frame: pd.DataFrame, into: dict[int, dict[date, int]]) -> None:
    """Add the frame's calls per user and month (the month's first day) to ``into``."""
    months = frame["occurred_at"].to_numpy().astype("datetime64[M]").astype(np.int64)
    keys, counts = np.unique(
        frame["user_ix"].to_numpy().astype(np.int64) * 100_000 + months, return_counts=True
    )
    for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
        user, month = divmod(key, 100_000)
        first = date(1970 + month // 12, month % 12 + 1, 1)
        of_user = into.setdefault(user, {})
        of_user[first] = of_user.get(first, 0) + count


def write_demo_accounts(
    engine: Engine,
    pop: Population,
    days: int,
    end: datetime,
    calls_of: dict[int, dict[date, int]],
) -> dict[str, Written]:
    """Upsert the plans, customers, user ids and revenue of the demo's users that called, in
    one transaction. Demo data is not an edit: no audit rows (the audit log stays the
    editors')."""
    today = end.astimezone(UTC).date()
    start = today - timedelta(days=days - 1)
    accounts = demo_accounts.accounts_for(pop.customers, start, today, calls_of)
    with engine.begin() as conn:
        return write_accounts(conn, accounts, "demo", "demo data", audit=False)


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(call_ids)).scalar_one() == 0


def main(argv: list[str] | None = None) -> int:
    from tracking.migrate import upgrade

    parser = argparse.ArgumentParser(
        prog="python -m dashboard.demo",
        description="Load a realistic, deterministic history of demo AI calls into a store.",
    )
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
    with engine.connect() as conn:
        terms = load_terms(conn)
    running = {t.customer_id for t in terms if t.end is None}
    customers = {t.customer_id for t in terms}
    print(f"Demo accounts: {len(customers):,} customers, {len(customers - running):,} churned.")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

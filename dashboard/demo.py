"""Demo data: a realistic, deterministic history of AI calls, priced from the store's prices.

    python -m dashboard.demo [--url URL] [--calls 50000] [--days 60] [--seed 7] [--if-empty]

Users on free, pro and team plans have heavy-tailed (Zipf-like) usage; each uses a few features,
and each feature its own model; traffic peaks in the afternoon, dips at weekends and grows over
the period; a few calls fail, many chat calls hit the prompt cache, and one day has a spike of
traffic and errors. The same seed, size and end time give the same calls (ids included).

Speed: calls are generated a day at a time as numpy columns and priced column-wise with the
exact rules of ``tracking.pricing`` (checked against it in tests). On PostgreSQL each chunk goes
through the writer's COPY path (``tracking.pg_copy.write_new_calls``: ids guarded, rollups
upserted) on a second thread while the next chunk is generated; SQLite takes ``write_batch``.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from tracking.config import resolve_url
from tracking.db import describe_url, make_engine
from tracking.events import CallEvent
from tracking.partitions import Month, ensure_months, month_of
from tracking.pg_copy import COPY_COLUMNS
from tracking.pricing import INFORMATIONAL, TOKEN_PARTS, PriceBook, PriceVersion, load_price_book
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
    user = rng.choice(len(pop.user_p), size=n, p=pop.user_p)
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
    for day in range(days):
        if pop.day_counts[day]:
            hours = max(1, end.hour) if day == days - 1 else 24
            yield day_frame(pop, day, start, rng, hours), pop


# --- pricing, column-wise -----------------------------------------------------------------------


def _usage_columns(frame: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """unit -> (whole-number counts, present mask, scale): audio seconds are counted in tenths."""
    cols: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    for name in INT_COLUMNS:
        arr = frame[name].array
        cols[name] = (np.asarray(arr.fillna(0), dtype=np.int64), ~np.asarray(arr.isna()), 1)
    audio = frame["audio_seconds"].to_numpy()
    cols["audio_seconds"] = (
        np.nan_to_num(np.rint(audio * 10)).astype(np.int64),
        ~np.isnan(audio),
        10,
    )
    chars = frame["characters"].to_numpy()
    cols["characters"] = (np.maximum(chars, 0), chars >= 0, 1)
    return cols


def price_version_columns(
    version: PriceVersion, cols: dict[str, tuple[np.ndarray, np.ndarray, int]], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact nano-dollar costs of ``n`` calls under ``version``, and which ones are priced.

    The rules of ``tracking.pricing.price_usage``, column by column: cache parts priced on their
    own come out of input; a tier applies when a call's input passes it; a unit with a count but
    no rate makes the call unpriced (unless informational); the sum is rounded half-even to the
    nano-dollar. The rates are the engine's own ``Plan`` (whole multiples of a common
    denominator), so integer arithmetic keeps it exact.
    """
    plan = version.plan(batch=False)  # the engine's rates for a standard call, exact
    priced_units = plan.tiers.keys()
    counts = {u: c.copy() for u, (c, _, _) in cols.items()}
    present = {u: p for u, (_, p, _) in cols.items()}
    scale = {u: s for u, (_, _, s) in cols.items()}
    input_tokens = cols["input_tokens"][0]
    for part in TOKEN_PARTS:
        if part in priced_units:
            counts["input_tokens"] = counts["input_tokens"] - np.where(
                present[part], counts[part], 0
            )
    ok = np.ones(n, dtype=bool)
    terms: list[tuple[np.ndarray, list[Fraction], np.ndarray]] = []  # count, tier rates, tier
    for unit, count in counts.items():
        active = present[unit] & (count != 0)
        tiers = plan.tiers.get(unit)
        if not tiers:
            if unit not in INFORMATIONAL and unit not in TOKEN_PARTS:
                ok &= ~active
            continue
        # nano-dollars per counted unit (audio seconds are counted in tenths)
        rates = [Fraction(multiple, plan.denominator * scale[unit]) for _, multiple in tiers]
        choice = np.full(n, len(tiers) - 1)
        for i in reversed(range(len(tiers))):
            above = tiers[i][0]
            applies = (above == 0) | (input_tokens > above)
            choice = np.where(applies, i, choice)
        terms.append((np.where(active, count, 0), rates, choice))
    denominator = math.lcm(1, *(r.denominator for _, rates, _ in terms for r in rates))
    largest = sum(
        int(count.max(initial=0)) * max(int(r * denominator) for r in rates)
        for count, rates, _ in terms
    )
    kind = np.int64 if largest < 2**62 else object  # exact either way; int64 when it fits
    total = np.zeros(n, dtype=kind)
    for count, rates, choice in terms:
        numerators = np.array([int(r * denominator) for r in rates], dtype=kind)[choice]
        total = total + count.astype(kind) * numerators
    quotient, remainder = np.divmod(total, denominator)
    twice = remainder * 2
    round_up = (twice > denominator) | ((twice == denominator) & (quotient % 2 == 1))
    nanos = (quotient + round_up).astype(np.int64)
    return nanos, ok


def price_frame(book: PriceBook, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(cost in nano-dollars or -1 when unpriced, price version id or -1) for every call."""
    n = len(frame)
    nanos = np.full(n, -1, dtype=np.int64)
    versions = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return nanos, versions
    cols = _usage_columns(frame)
    first = pd.Timestamp(frame["occurred_at"].iloc[0]).to_pydatetime().replace(tzinfo=UTC)
    last = pd.Timestamp(frame["occurred_at"].iloc[-1]).to_pydatetime().replace(tzinfo=UTC)
    feature_ix = frame["feature_ix"].to_numpy()
    for ix, feature in enumerate(FEATURES):
        rows = np.flatnonzero(feature_ix == ix)
        if not len(rows):
            continue
        at_first = book.version_at(feature.provider, feature.model, first)
        at_last = book.version_at(feature.provider, feature.model, last)
        if at_last is None:
            continue
        if at_first is None or at_first.id != at_last.id:  # a price change inside the day
            _price_rows_one_by_one(book, feature, frame, rows, nanos, versions)
            continue
        sub = {u: (c[rows], p[rows], s) for u, (c, p, s) in cols.items()}
        cost, ok = price_version_columns(at_last, sub, len(rows))
        nanos[rows] = np.where(ok, cost, -1)
        versions[rows] = np.where(ok, at_last.id, -1)
    return nanos, versions


def _price_rows_one_by_one(
    book: PriceBook,
    feature: Feature,
    frame: pd.DataFrame,
    rows: np.ndarray,
    nanos: np.ndarray,
    versions: np.ndarray,
) -> None:
    for row, event in zip(rows, events(frame.iloc[rows]), strict=True):
        quote = book.quote(feature.provider, feature.model, event.occurred_at, event.usage())
        if quote.cost is not None and quote.version_id is not None:
            nanos[row] = int(quote.cost * 10**9)
            versions[row] = quote.version_id


# --- writing ------------------------------------------------------------------------------------


def _optional(arr: pd.arrays.IntegerArray) -> list[int | None]:
    return [
        None if missing else int(v)
        for v, missing in zip(arr.to_numpy(na_value=0), arr.isna(), strict=True)
    ]


def events(
    frame: pd.DataFrame,
    pop: Population | None = None,
    nanos: np.ndarray | None = None,
    versions: np.ndarray | None = None,
) -> list[CallEvent]:
    """The frame's rows as CallEvents (the SQLite path), priced when costs are given."""
    n = len(frame)
    feature = frame["feature_ix"].tolist()
    tokens = {name: _optional(frame[name].array) for name in INT_COLUMNS}
    audio = frame["audio_seconds"].tolist()
    chars = frame["characters"].tolist()
    moments = frame["occurred_at"].dt.tz_localize(UTC).dt.to_pydatetime().tolist()
    out = []
    for i, (fx, hexid, user, failed, error, duration) in enumerate(
        zip(
            feature,
            frame["id"].tolist(),
            frame["user_ix"].tolist(),
            frame["failed"].tolist(),
            frame["error_ix"].tolist(),
            frame["duration_ms"].tolist(),
            strict=True,
        )
    ):
        f = FEATURES[fx]
        units: dict[str, int | float] = {}
        if not math.isnan(audio[i]):
            units["audio_seconds"] = audio[i]
        if chars[i] >= 0:
            units["characters"] = chars[i]
        cost = version = None
        if nanos is not None and versions is not None and nanos[i] >= 0:
            cost, version = from_nanos(int(nanos[i])), int(versions[i])
        out.append(
            CallEvent(
                id=uuid.UUID(hex=hexid),
                occurred_at=moments[i],
                provider=f.provider,
                model=f.model,
                operation=f.operation,
                user_id=f"user_{user:04d}",
                feature=f.name,
                status="error" if failed else "ok",
                error_type=ERRORS[error] if failed else None,
                duration_ms=duration,
                units=units or None,
                cost_usd=cost,
                cost_source="computed" if cost is not None else None,
                price_version_id=version,
                tags={"plan": PLANS[pop.plan[user]], "demo": True} if pop else None,
                environment="demo",
                priced=True,
                **{name: tokens[name][i] for name in INT_COLUMNS},  # type: ignore[arg-type]
            )
        )
    assert len(out) == n
    return out


def copy_text(frame: pd.DataFrame, pop: Population, nanos: np.ndarray, versions: np.ndarray) -> str:
    """The frame in COPY's text format, columns in ``COPY_COLUMNS`` order."""
    n = len(frame)
    feature = frame["feature_ix"].to_numpy()
    failed = frame["failed"].to_numpy()

    def pick(values: list[str]) -> np.ndarray:
        return np.array(values, dtype=object)[feature]

    audio = frame["audio_seconds"].to_numpy()
    chars = frame["characters"].to_numpy()
    units = np.full(n, None, dtype=object)
    for i in np.flatnonzero(~np.isnan(audio)):
        units[i] = f'{{"audio_seconds":{float(audio[i])!r}}}'
    for i in np.flatnonzero(chars >= 0):
        units[i] = f'{{"characters":{chars[i]}}}'
    tags = np.array([f'{{"plan":"{p}","demo":true}}' for p in PLANS], dtype=object)
    user = frame["user_ix"].to_numpy()
    priced = nanos >= 0
    dollars = np.char.add(
        np.char.add((nanos // 10**9).astype(str), "."),
        np.char.zfill((nanos % 10**9).astype(str), 9),
    )
    out = pd.DataFrame(
        {
            "id": frame["id"].to_numpy(),
            "occurred_at": np.datetime_as_string(
                frame["occurred_at"].to_numpy().astype("datetime64[s]"), timezone="UTC"
            ),
            "duration_ms": frame["duration_ms"].to_numpy(),
            "ttft_ms": None,
            "provider": pick([f.provider for f in FEATURES]),
            "model": pick([f.model for f in FEATURES]),
            "requested_model": None,
            "operation": pick([f.operation for f in FEATURES]),
            "user_id": np.char.add("user_", np.char.zfill(user.astype(str), 4)),
            "feature": pick([f.name for f in FEATURES]),
            "status": np.where(failed, "error", "ok"),
            "error_type": np.where(
                failed,
                np.array(ERRORS, dtype=object)[np.maximum(frame["error_ix"].to_numpy(), 0)],
                None,
            ),
            "request_id": None,
            **{name: frame[name].array for name in INT_COLUMNS},
            "reasoning_tokens": None,
            "units": units,
            "batch": "f",
            "cost_usd": np.where(priced, dollars, None),
            "cost_source": np.where(priced, "computed", None),
            "price_version_id": pd.arrays.IntegerArray(versions, ~priced),
            "tags": tags[pop.plan[user]],
            "environment": "demo",
        },
        columns=list(COPY_COLUMNS),
    )
    buffer = io.StringIO()
    out.to_csv(
        buffer,
        sep="\t",
        header=False,
        index=False,
        na_rep="\\N",
        quoting=csv.QUOTE_NONE,
        quotechar="\x01",  # COPY text has no quoting; JSON's quotes must pass as they are
        lineterminator="\n",
    )
    return buffer.getvalue()


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

    def report(finished: Iterator[tuple[int, int]]) -> None:
        nonlocal written, done
        for new, size in finished:
            written += new
            done += size
            if progress:
                progress(done, calls)

    try:
        for frame, pop in frames(calls, days, seed, end):
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
    return written


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(call_ids)).scalar_one() == 0


def main(argv: list[str] | None = None) -> int:
    from tracking.migrate import upgrade

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

"""Column-wise pricing and COPY text: equal to the engine's and the writer's, call for call."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from tests.test_pricing import random_usage
from tracking.db import make_engine
from tracking.events import CallEvent
from tracking.pg_copy import copy_text
from tracking.pg_copy_columns import Coded, Ints, copy_text_of_columns
from tracking.pricing import PriceBook, load_price_book, price_usage
from tracking.pricing_columns import UnitCounts, price_columns, quote_columns
from tracking.schema import TOKEN_FIELDS
from tracking.sqltypes import from_nanos, to_nanos


@pytest.fixture(scope="module")
def book() -> Iterator[PriceBook]:
    from tracking.catalogue_store import load_catalogue
    from tracking.migrate import upgrade

    engine = make_engine("sqlite://")
    upgrade(engine)
    with engine.begin() as conn:
        load_catalogue(conn)
        yield load_price_book(conn)
    engine.dispose()


def as_columns(usages: list[dict[str, object]]) -> dict[str, UnitCounts]:
    """The usages as the engine's columns: a fractional unit counted in 1/scale steps."""
    units = {unit for usage in usages for unit in usage}
    columns = {}
    for unit in units:
        exact = [
            None if (v := u.get(unit)) is None else Fraction(repr(v) if isinstance(v, float) else v)
            for u in usages
        ]
        scale = math.lcm(1, *(f.denominator for f in exact if f is not None))
        whole = [0 if f is None else int(f * scale) for f in exact]
        values = np.array(whole, dtype=np.int64 if max(whole) < 2**63 else object)
        columns[unit] = UnitCounts(values, np.array([f is not None for f in exact]), scale)
    return columns


def test_every_catalogue_version_prices_columns_as_the_engine_prices_calls(
    book: PriceBook,
) -> None:
    versions = [v for history in book._versions.values() for v in history]
    units = sorted({unit for v in versions for unit, _ in v.rates})
    rng = random.Random(11)
    mismatches, priced_calls = [], 0
    for v in versions:
        drawn = [random_usage(rng, units) for _ in range(24)]
        usages = [usage for usage, _ in drawn]
        batch = np.array([b for _, b in drawn])
        nanos, priced = price_columns(v, as_columns(usages), len(usages), batch)
        for i, (usage, b) in enumerate(drawn):
            expected = price_usage(v, usage, b)
            got = from_nanos(int(nanos[i])) if priced[i] else None
            if got != expected or str(got) != str(expected):
                mismatches.append((v.provider, v.model, usage, b, got, expected))
            priced_calls += expected is not None
    assert not mismatches, mismatches[:5]
    assert priced_calls > 2_000 and len(versions) > 500  # the rest report an unpriced unit


def test_the_version_in_force_prices_each_call_when_the_price_changes_inside_the_columns(
    book: PriceBook,
) -> None:
    histories = [h for h in book._versions.values() if len(h) > 1]
    assert len(histories) > 10
    rng = random.Random(3)
    units = ["input_tokens", "output_tokens", "cache_read_tokens", "requests"]
    for history in histories:
        first, last = history[0].effective_from, history[-1].effective_from
        span = (last - first).total_seconds()
        moments = sorted(
            first + timedelta(seconds=rng.uniform(-86_400, span + 86_400)) for _ in range(30)
        )
        moments[0] = last  # the very moment a version starts is in it
        drawn = [random_usage(rng, units) for _ in moments]
        batch = np.array([b for _, b in drawn])
        at = np.array([m.replace(tzinfo=None) for m in moments], dtype="datetime64[us]")
        provider, model = history[0].provider, history[0].model
        usage = as_columns([u for u, _ in drawn])
        nanos, versions = quote_columns(book, provider, model, at, usage, batch)
        for i, (u, b) in enumerate(drawn):
            quote = book.quote(provider, model, moments[i], u, b)
            assert (None if nanos[i] < 0 else from_nanos(int(nanos[i]))) == quote.cost
            assert (None if versions[i] < 0 else int(versions[i])) == quote.version_id


def test_an_unknown_model_is_unpriced_in_every_row(book: PriceBook) -> None:
    usage = {"input_tokens": UnitCounts(np.array([10, 0, 5]))}
    at = np.array(["2026-01-01T00:00"] * 3, dtype="datetime64[us]")
    nanos, versions = quote_columns(book, "openai", "no-such-model", at, usage)
    assert nanos.tolist() == versions.tolist() == [-1, -1, -1]


NASTY = ["u_1", "back\\slash", "tab\there", "cr\rlf\nend", "ünïcødé ✓ 日本", "", "\\N", " x "]


def random_events(n: int, rng: random.Random) -> list[CallEvent]:
    """Calls with every column's NULL, escapes and unicode in text and JSON, small and large
    costs (Decimal writes 1.5E-8 below a micro-dollar) and times with and without microseconds."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    found = []
    for i in range(n):
        nanos = rng.choice((None, 0, 7, 15, 999, 1000, 123_456_789, 10**9, 12 * 10**12 + 5))
        found.append(
            CallEvent(
                id=uuid.UUID(int=rng.getrandbits(128)),
                occurred_at=start
                + timedelta(
                    seconds=rng.randint(0, 10**7), microseconds=rng.choice((0, 1, 999_999))
                ),
                provider=rng.choice(("openai", "anthropic", "tab\tco")),
                model=rng.choice(("gpt-4o", "mödel-ü", "x\\y")),
                status=rng.choice(("ok", "error")),
                duration_ms=rng.choice((None, 0, 1234)),
                ttft_ms=rng.choice((None, 17)),
                requested_model=rng.choice((None, "gpt-4o-latest")),
                operation=rng.choice((None, "chat")),
                user_id=rng.choice((None, *NASTY)),
                feature=rng.choice((None, "chat\n", "search")),
                error_type=rng.choice((None, "RateLimitError")),
                request_id=rng.choice((None, f"req_{i}")),
                input_tokens=rng.choice((None, 0, 1200)),
                output_tokens=rng.choice((None, 300, 2**40)),
                cache_read_tokens=rng.choice((None, 0, 1000)),
                cache_write_tokens=rng.choice((None, 5)),
                reasoning_tokens=rng.choice((None, 9)),
                units=rng.choice((None, {"audio_seconds": 12.5}, {"characters": 300, "images": 1})),
                batch=rng.random() < 0.3,
                cost_usd=None if nanos is None else from_nanos(nanos),
                cost_source=None if nanos is None else "computed",
                price_version_id=None if nanos is None else rng.randint(1, 900),
                tags=rng.choice((None, {}, {"plan": "pro", "demo": True}, {"team": "ü\t\\"})),
                environment=rng.choice((None, "prod", "dév")),
            )
        )
    return found


def _nullable(values: list[int | None]) -> Ints:
    return Ints(
        np.array([v or 0 for v in values], dtype=np.int64),
        np.array([v is not None for v in values]),
    )


def _coded(values: list[object]) -> Coded:
    choices: list[object] = []
    codes = []
    for v in values:
        if v is None:
            codes.append(-1)
            continue
        if v not in choices:
            choices.append(v)
        codes.append(choices.index(v))
    return Coded(np.array(codes), choices)


TEXT_COLUMNS = (
    "requested_model",
    "operation",
    "error_type",
    "request_id",
    "cost_source",
    "environment",
)


def test_copy_text_of_columns_is_copy_text_of_the_same_events_byte_for_byte() -> None:
    events = random_events(3_000, random.Random(5))
    column = {name: [getattr(e, name) for e in events] for name in CallEvent.__dataclass_fields__}
    expected = copy_text(events)
    # every column as one value per call, as the events hold them
    plain = {name: np.array(column[name], dtype=object) for name in column if name != "priced"}
    assert copy_text_of_columns(len(events), plain) == expected
    # and in the fast forms: codes, whole numbers, nano-dollars, bools, datetime64
    fast = {
        "id": np.array([e.id.hex for e in events]),
        "occurred_at": np.array(
            [e.occurred_at.replace(tzinfo=None) for e in events], dtype="datetime64[us]"
        ),
        **{
            name: _coded(column[name])
            for name in ("provider", "model", "status", "user_id", "feature", "tags", "units")
        },
        **{
            name: _nullable(column[name])
            for name in ("duration_ms", "ttft_ms", "price_version_id", *TOKEN_FIELDS)
        },
        "cost_usd": _nullable([None if c is None else to_nanos(c) for c in column["cost_usd"]]),
        "batch": np.array(column["batch"]),
        **{name: np.array(column[name], dtype=object) for name in TEXT_COLUMNS},
    }
    assert copy_text_of_columns(len(events), fast) == expected


def test_a_value_for_every_call_and_missing_columns_are_written_as_copy_text_writes_them() -> None:
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    events = [
        CallEvent(id=uuid.UUID(int=i), occurred_at=at, provider="p", model="m", environment="é\\")
        for i in range(3)
    ]
    columns = {
        "id": np.array([e.id for e in events], dtype=object),
        "occurred_at": at,
        "provider": "p",
        "model": "m",
        "status": "ok",
        "batch": False,
        "environment": "é\\",
        "cost_usd": None,
    }
    assert copy_text_of_columns(3, columns) == copy_text(events)
    with pytest.raises(ValueError, match="not columns of calls"):
        copy_text_of_columns(3, {**columns, "colour": "red"})
    with pytest.raises(ValueError, match="2 values for 3 calls"):
        copy_text_of_columns(3, {**columns, "duration_ms": Ints(np.array([1, 2]))})


def test_nano_dollars_are_written_as_decimal_writes_them() -> None:
    from tracking.pg_copy_columns import _dollars

    nanos = np.array([0, 1, 9, 10, 15, 100, 999, 1000, 10**9 - 1, 10**9, 2**62, -5, -(10**9)])
    assert _dollars(nanos).tolist() == [str(from_nanos(int(v))) for v in nanos]
    assert str(Decimal(15).scaleb(-9)) == "1.5E-8"  # the case the plain format would miss


def test_a_calls_usage_holds_every_token_field_then_its_units() -> None:
    # CallEvent.usage writes TOKEN_FIELDS out by hand: a field added to one must reach the other
    event = CallEvent(
        uuid.uuid4(), datetime.now(UTC), "openai", "gpt-4o", input_tokens=5, reasoning_tokens=2
    )
    event.units = {"requests": 1}
    assert list(event.usage()) == [*TOKEN_FIELDS, "requests"]
    assert event.usage() == {**{name: getattr(event, name) for name in TOKEN_FIELDS}, "requests": 1}

"""Properties of the cost engine and of ``record``'s validation, checked on generated input.

Hand-picked cases (tests/test_pricing.py, tests/test_refusals.py) show that the rules work where
someone thought to look; here hypothesis generates price books, usages, ids and tags, and
shrinks whatever breaks a promise to its smallest case. The engine's promises: a cost is never
negative, never falls when a count grows, is exact (the Decimal is the nano-dollar count moved
nine places, equal to a Fraction computed from the rates), and is what both stores keep. The
validation's: whatever ``record`` accepts is stored and read back as given, and whatever it
refuses changes nothing and never raises into the caller.
"""

from __future__ import annotations

import math
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import tracking
from tests.conftest import _empty
from tracking.db import make_engine
from tracking.events import _CALL_ID_NAMESPACE, COUNT_LIMITS, MAX_COST, NAME_LIMITS
from tracking.price_store import RATE_DECIMALS, RATE_LIMIT, RateRow, add_version
from tracking.pricing import INFORMATIONAL, TOKEN_PARTS, PriceBook, PriceVersion, Rate
from tracking.schema import calls
from tracking.sqltypes import NANOS_PER_DOLLAR

# few examples, no deadline: the file runs in seconds on a shared machine, and a store round
# trip takes longer than hypothesis' default deadline; UNITWISE_PROPERTY_EXAMPLES=2000 digs deeper
EXAMPLES = int(os.environ.get("UNITWISE_PROPERTY_EXAMPLES", "40"))
FEW = settings(max_examples=EXAMPLES, deadline=None)
# the store fixtures are made once per test, not per example: each example prices its own
# model, and the one that reads ids back empties the store first (hypothesis repeats values)
ON_STORE = settings(FEW, suppress_health_check=[HealthCheck.function_scoped_fixture])

START = datetime(2025, 1, 1, tzinfo=UTC)
AT = datetime(2025, 6, 1, 12, tzinfo=UTC)
BIGINT = COUNT_LIMITS["input_tokens"]
OTHER_UNITS = ("audio_seconds", "characters", "images", "requests")

# ---------------------------------------------------------------------------- price books


def rates(max_value: int = 10**9) -> st.SearchStrategy[Decimal]:
    """A rate the store keeps exactly: at most RATE_DECIMALS places, below RATE_LIMIT."""
    return st.builds(
        lambda n, places: Decimal(n).scaleb(-places),
        st.integers(0, max_value),
        st.integers(0, RATE_DECIMALS),
    )


@st.composite
def rate_rows(draw: st.DrawFn) -> list[RateRow]:
    """A version's rates: input and output always, other units and cache parts sometimes,
    each with an optional batch variant and an optional long-context tier.

    A higher tier never costs less than the one below it, as with every provider that has
    tiers (Gemini, Claude's 1M context): the whole call moves to the higher rate, so a cheaper
    higher tier would make one more token lower the bill, by the provider's own rule.
    """
    units = ["input_tokens", "output_tokens"]
    units += [u for u in (*TOKEN_PARTS, *OTHER_UNITS) if draw(st.booleans())]
    tier_above = draw(st.integers(1, 10**6))
    rows: list[RateRow] = []
    for unit in units:
        per = draw(st.sampled_from([1, 1_000, 1_000_000]) | st.integers(1, 10**6))
        for variant in ("standard", "batch") if draw(st.booleans()) else ("standard",):
            base = draw(rates())
            rows.append(RateRow(unit, base, per, 0, variant))
            if draw(st.booleans()):
                rows.append(RateRow(unit, base + draw(rates()), per, tier_above, variant))
    assert all(r.rate < RATE_LIMIT for r in rows)
    return rows


def version_of(rows: list[RateRow], vid: int = 1, model: str = "m") -> PriceVersion:
    """The engine's in-memory form of ``rows`` (as load_price_book builds it)."""
    found = PriceVersion(vid, "props", model, START)
    for r in rows:
        found.rates.setdefault((r.unit, r.variant), []).append(Rate(r.rate, r.per, r.tier_above))
    for tiers in found.rates.values():
        tiers.sort(key=lambda r: r.tier_above, reverse=True)
    return found


# ---------------------------------------------------------------------------- usages


@st.composite
def usages(draw: st.DrawFn, rows: list[RateRow], most: int = BIGINT) -> dict[str, Any]:
    """Usage of the units ``rows`` price, consistent as the store counts it: the cache parts
    are inside input_tokens and reasoning inside output_tokens."""
    priced = {r.unit for r in rows}
    input_tokens = draw(st.integers(0, most))
    read = draw(st.integers(0, input_tokens))
    written = draw(st.integers(0, input_tokens - read))
    output_tokens = draw(st.integers(0, most))
    usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "cache_read_tokens": read,
        "cache_write_tokens": written,
        "output_tokens": output_tokens,
        "reasoning_tokens": draw(st.integers(0, output_tokens)),
    }
    small = min(most, 10**9)
    if "audio_seconds" in priced:  # fractional: a float whose decimal is what is billed
        usage["audio_seconds"] = draw(
            st.integers(0, small) | st.floats(0, small, allow_nan=False, allow_infinity=False)
        )
    for unit in ("characters", "images"):
        if unit in priced:
            usage[unit] = draw(st.integers(0, small))
    if "requests" in priced:  # None: one request, as a call is
        usage["requests"] = draw(st.none() | st.integers(0, small))
    return usage


@st.composite
def priced_calls(draw: st.DrawFn, most: int = BIGINT) -> tuple[list[RateRow], dict, bool]:
    rows = draw(rate_rows())
    return rows, draw(usages(rows, most)), draw(st.booleans())


def expected_cost(rows: list[RateRow], usage: dict[str, Any], batch: bool) -> Decimal:
    """The cost by the rules in tracking/pricing.py's docstring, in Fractions, rounded once to
    the nano-dollar, half to even: the oracle the engine's integer arithmetic must equal."""
    input_tokens = usage.get("input_tokens") or 0

    def rate(unit: str) -> Fraction | None:
        for variant in ("batch", "standard") if batch else ("standard",):
            tiers = [r for r in rows if r.unit == unit and r.variant == variant]
            if tiers:
                live = [r for r in tiers if r.tier_above == 0 or input_tokens > r.tier_above]
                chosen = max(live, key=lambda r: r.tier_above)
                return Fraction(chosen.rate) / chosen.per
        return None

    total = Fraction(0)
    for unit, value in usage.items():
        count = Fraction(Decimal(repr(value))) if isinstance(value, float) else value or 0
        if unit == "input_tokens":  # the parts priced on their own come out of the input
            count -= sum(usage.get(p) or 0 for p in TOKEN_PARTS if rate(p) is not None)
        found = rate(unit)
        if found is not None:
            total += count * found
        else:
            assert unit in INFORMATIONAL or unit in TOKEN_PARTS, unit
    if usage.get("requests") is None and (one := rate("requests")) is not None:
        total += one
    with localcontext(prec=200):
        return Decimal(round(total * NANOS_PER_DOLLAR)) / NANOS_PER_DOLLAR


def quote(rows: list[RateRow], usage: dict[str, Any], batch: bool) -> tuple[Decimal, int]:
    book = PriceBook([version_of(rows)])
    cost, vid = book.quote("props", "m", AT, usage, batch)
    nanos, nanos_vid = book.quote_nanos("props", "m", AT, usage, batch)
    assert cost is not None and nanos is not None, "every unit of the usage has a rate"
    assert vid == nanos_vid == 1
    return cost, nanos


# ---------------------------------------------------------------------------- the engine


@FEW
@given(priced_calls())
def test_a_cost_is_exact_and_never_negative(call: tuple[list[RateRow], dict, bool]) -> None:
    rows, usage, batch = call
    cost, nanos = quote(rows, usage, batch)
    assert isinstance(cost, Decimal) and isinstance(nanos, int)
    assert cost >= 0 and nanos >= 0
    with localcontext(prec=200):  # the Decimal is the nano-dollars moved nine places, exactly
        assert cost == Decimal(nanos) / NANOS_PER_DOLLAR
    assert cost.as_tuple().exponent == -9  # to the nano-dollar, as both stores keep it
    assert cost == expected_cost(rows, usage, batch)


GROWABLE = ("input_tokens", "output_tokens", *TOKEN_PARTS, "reasoning_tokens", *OTHER_UNITS)


@FEW
@given(priced_calls(), st.sampled_from(GROWABLE), st.integers(1, 10**6))
def test_more_of_any_count_never_costs_less(
    call: tuple[list[RateRow], dict, bool], unit: str, more: int
) -> None:
    rows, usage, batch = call
    if unit in OTHER_UNITS and unit not in {r.unit for r in rows}:
        return  # a unit without a rate makes the call unpriced: test_pricing.py covers that
    grown = dict(usage)
    if unit not in grown:
        grown[unit] = 0
    if unit == "requests" and grown[unit] is None:
        grown[unit] = 1  # a call that names no count is one request
    grown[unit] += more
    # a part grows its whole with it: a cache read more is an input token more
    if unit in TOKEN_PARTS:
        grown["input_tokens"] += more
    if unit == "reasoning_tokens":
        grown["output_tokens"] += more
    assert quote(rows, grown, batch)[0] >= quote(rows, usage, batch)[0]


# ---------------------------------------------------------------------------- on the stores


def rows_of(url: str, *ids: uuid.UUID) -> dict[uuid.UUID, Any]:
    eng = make_engine(url)
    with eng.connect() as conn:
        found = conn.execute(select(calls).where(calls.c.id.in_(ids))).all()
    eng.dispose()
    return {r.id: r for r in found}


def empty_store(url: str) -> None:
    eng = make_engine(url)
    _empty(eng)
    eng.dispose()


def call_count(url: str) -> int:
    eng = make_engine(url)
    with eng.connect() as conn:
        n = conn.execute(select(func.count()).select_from(calls)).scalar_one()
    eng.dispose()
    return n


@ON_STORE
@given(data=st.data())
def test_a_recorded_call_has_the_cost_the_engine_computed_on_both_stores(
    lenient: str, data: st.DataObject
) -> None:
    rows = data.draw(rate_rows())
    usage = data.draw(usages(rows, most=data.draw(st.sampled_from([10**5, 10**9, BIGINT]))))
    batch = data.draw(st.booleans())
    model = f"m-{uuid.uuid4().hex[:12]}"
    eng = make_engine(lenient)
    with eng.begin() as conn:
        vid = add_version(conn, "props", model, START, rows, source="test")
    eng.dispose()
    tracking.refresh_prices()
    call_id, before = uuid.uuid4(), tracking.stats()["rejected"]
    given_usage = {k: v for k, v in usage.items() if v is not None}
    got = tracking.record(
        "props", model, occurred_at=AT, call_id=call_id, batch=batch, **given_usage
    )
    assert tracking.flush(5)
    want = PriceBook([version_of(rows, vid, model)]).quote("props", model, AT, usage, batch)
    assert want.cost == expected_cost(rows, usage, batch)
    stored = rows_of(lenient, call_id)
    event("beyond MAX_COST" if want.cost > MAX_COST else "within MAX_COST")
    if want.cost > MAX_COST:  # more than the stores hold: refused at the call, nothing stored
        assert got is None and stored == {}
        assert tracking.stats()["recent_rejections"][-1]["field"] == "cost_usd"
        assert tracking.stats()["rejected"] == before + 1
    else:
        assert got == call_id
        row = stored[call_id]
        assert (row.cost_usd, row.price_version_id) == (want.cost, vid)


# ---------------------------------------------------------------------------- record's input

# the characters that make text hostile to a display or a store, mixed into ordinary text
TRICKY = [
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\ufeff",  # byte-order mark
    "\u0301",  # a combining accent
    "שלום",
    "مرحبا",
    "👩‍👩‍👧",
    "\U0010fffd",  # the last plane
    "'; DROP TABLE calls; --",
    "<script>alert(1)</script>",
    '=HYPERLINK("http://x")',
    "\t",
    "\x07",
    "%s",
    "\\",
]
PLAIN = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def texts(limit: int) -> st.SearchStrategy[str]:
    """Text both stores hold: no NUL, no lone surrogate; trimmed, at most ``limit`` chars."""
    pieces = st.lists(st.sampled_from(TRICKY) | st.text(PLAIN, max_size=8), max_size=6)
    return pieces.map("".join).map(lambda s: s.strip()[:limit].strip()).filter(bool)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**200), 2**200)  # JSON numbers are not bounded: big ones stay exact
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts(40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts(20), inner, max_size=3),
    max_leaves=8,
)
IDS = st.uuids() | texts(60)
PAD = st.sampled_from(["", " ", "\t", "\n", "\u3000", "\xa0"])  # whitespace record trims


def padded(limit: int) -> st.SearchStrategy[str]:
    """A name as a caller might pass it: text within ``limit`` with whitespace around it."""
    return st.tuples(PAD, texts(limit), PAD).map("".join)


@st.composite
def good_calls(draw: st.DrawFn) -> dict[str, Any]:
    """A call ``record`` must accept: every field valid, many of them hostile-looking."""
    fields: dict[str, Any] = {
        "provider": draw(padded(NAME_LIMITS["provider"])),
        "model": draw(padded(NAME_LIMITS["model"])),
        "call_id": draw(IDS),
        "user_id": draw(st.none() | padded(NAME_LIMITS["user_id"])),
        "feature": draw(st.none() | padded(NAME_LIMITS["feature"])),
        "tags": draw(st.none() | st.dictionaries(texts(30), JSON_VALUES, min_size=1, max_size=4)),
        "occurred_at": draw(
            st.datetimes(datetime(1970, 1, 2), datetime(2026, 1, 1), timezones=st.just(UTC))
        ),
    }
    input_tokens = draw(st.none() | st.integers(0, BIGINT))
    if input_tokens is not None:
        fields["input_tokens"] = input_tokens
        fields["cache_read_tokens"] = draw(st.integers(0, input_tokens))
    output_tokens = draw(st.none() | st.integers(0, BIGINT))
    if output_tokens is not None:
        fields["output_tokens"] = output_tokens
        fields["reasoning_tokens"] = draw(st.integers(0, output_tokens))
    fields["duration_ms"] = draw(st.none() | st.integers(0, COUNT_LIMITS["duration_ms"]))
    return fields


def stored_id(call_id: uuid.UUID | str) -> uuid.UUID:
    """The id a call is stored under: the caller's UUID, or the stable UUID of its string."""
    if isinstance(call_id, uuid.UUID):
        return call_id
    try:
        return uuid.UUID(call_id)
    except ValueError:
        return uuid.uuid5(_CALL_ID_NAMESPACE, call_id)


@ON_STORE
@given(good_calls())
def test_whatever_record_accepts_it_stores_and_reads_back_unchanged(
    lenient: str, fields: dict[str, Any]
) -> None:
    empty_store(lenient)  # hypothesis repeats ids across examples; one id is one row
    before = tracking.stats()["rejected"]
    got = tracking.record(**fields)
    assert got == stored_id(fields["call_id"]), tracking.stats()["recent_rejections"]
    assert tracking.flush(5)
    stats = tracking.stats()
    assert stats["rejected"] == before and stats["spilled"] == 0
    row = rows_of(lenient, got)[got]
    # names are kept as given but for the whitespace around them, which record trims
    for name in ("provider", "model", "user_id", "feature"):
        given_name = fields[name]
        assert getattr(row, name) == (None if given_name is None else given_name.strip()), name
    assert (row.tags, row.occurred_at) == (fields["tags"], fields["occurred_at"])
    for name in ("input_tokens", "cache_read_tokens", "output_tokens", "reasoning_tokens"):
        assert getattr(row, name) == fields.get(name), name
    assert row.duration_ms == fields["duration_ms"]
    assert row.cost_usd is None  # a generated model has no price: unpriced, never $0


@dataclass(frozen=True)
class Bad:
    """One field's bad value and the field the refusal must name."""

    field: str
    value: Any
    names: str = ""  # the field the message names, when it is not ``field`` itself


NOT_COUNTS = st.sampled_from([-1, -(2**70), BIGINT + 1, 2**64, True, False, 1.0, 0.5, "7", [1]])
BAD_TEXT = st.sampled_from(["a\x00b", "\x00", "ok\ud800", "\udfff", 7, 1.5, b"bytes", ["x"], {}])
BAD_TAGS = st.sampled_from(
    [
        {"score": math.nan},
        {"score": math.inf},
        {"nested": [{"x": -math.inf}]},
        {"k": "a\x00b"},
        {"k\x00": 1},
        {"k": "\ud800"},
        {"k": object()},
        {"k": {1, 2}},
        {"k": "x" * 5_000},
        ["not", "a", "dict"],
        "tags",
    ]
)
BAD_FIELDS = st.one_of(
    st.builds(Bad, st.sampled_from(["input_tokens", "output_tokens", "duration_ms"]), NOT_COUNTS),
    st.builds(Bad, st.sampled_from(["user_id", "feature", "provider", "model"]), BAD_TEXT),
    st.builds(Bad, st.just("user_id"), st.just("u" * (NAME_LIMITS["user_id"] + 1))),
    st.builds(Bad, st.just("provider"), st.just("p" * (NAME_LIMITS["provider"] + 1))),
    st.builds(Bad, st.just("tags"), BAD_TAGS),
    st.builds(
        Bad,
        st.just("units"),
        st.sampled_from([{"images": math.nan}, {"images": -1}]),
        st.just("images"),
    ),
    st.builds(Bad, st.just("audio_seconds"), st.sampled_from([math.inf, -0.5, "1", True])),
    st.builds(Bad, st.just("cost_usd"), st.sampled_from(["NaN", -1, "abc", MAX_COST * 2, True])),
    st.builds(Bad, st.just("call_id"), st.sampled_from(["", "  ", 7, "a\x00", b"id"])),
    st.builds(Bad, st.just("occurred_at"), st.sampled_from(["2025-01-01", 1.7e9, datetime.max])),
    st.builds(Bad, st.just("status"), st.sampled_from(["OK", "failed", 1, " ok"])),
    st.builds(Bad, st.just("batch"), st.sampled_from(["false", 1, 0, "yes"])),
    st.builds(Bad, st.just("cache_read_tokens"), st.just(11), st.just("cache_read_tokens")),
)


@ON_STORE
@given(good_calls(), BAD_FIELDS)
def test_whatever_record_refuses_changes_nothing_and_never_raises(
    lenient: str, fields: dict[str, Any], bad: Bad
) -> None:
    fields = {**fields, "input_tokens": 10, "cache_read_tokens": 0, bad.field: bad.value}
    rows_before, before = call_count(lenient), tracking.stats()["rejected"]
    assert tracking.record(**fields) is None  # no exception, no id
    assert tracking.flush(5)
    stats = tracking.stats()
    assert stats["rejected"] == before + 1
    assert stats["recent_rejections"][-1]["field"] == (bad.names or bad.field)
    assert call_count(lenient) == rows_before

"""The cost engine: hand-computed cases for every unit, tier and date boundary, the reference
catalogue on both stores, and an oracle that prices usage with genai-prices' own ``calc_price``."""

from __future__ import annotations

import random
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from sqlalchemy import Engine, select, update

from tracking.catalogue import catalogue_models
from tracking.catalogue_store import load_catalogue, refresh_catalogue
from tracking.pricing import PriceBook, PriceVersion, Rate, load_price_book, price_usage
from tracking.schema import price_versions, prices
from tracking.sqltypes import NANO

D = Decimal
JAN = datetime(2025, 1, 1, tzinfo=UTC)
JUL = datetime(2025, 7, 1, tzinfo=UTC)


def version(vid: int, model: str, start: datetime, **rates: Rate) -> PriceVersion:
    found = PriceVersion(vid, "test", model, start)
    for key, rate in rates.items():
        unit, _, variant = key.partition("__")
        found.rates.setdefault((unit, variant or "standard"), []).append(rate)
    for tiers in found.rates.values():
        tiers.sort(key=lambda r: r.tier_above, reverse=True)
    return found


M = 1_000_000
CHAT = version(
    1,
    "chat",
    JAN,
    input_tokens=Rate(D("2.5"), M),
    cache_read_tokens=Rate(D("1.25"), M),
    cache_write_tokens=Rate(D("3.75"), M),
    output_tokens=Rate(D("10"), M),
    input_tokens__batch=Rate(D("1.25"), M),
    output_tokens__batch=Rate(D("5"), M),
)


@pytest.mark.parametrize(
    ("usage", "batch", "expected"),
    [
        # 1,000 input tokens at $2.50/M
        ({"input_tokens": 1000}, False, D("0.0025")),
        # 300 output tokens at $10/M
        ({"output_tokens": 300}, False, D("0.003")),
        # 1,200 input of which 1,000 cache reads: 200 x 2.5 + 1,000 x 1.25, per M
        ({"input_tokens": 1200, "cache_read_tokens": 1000}, False, D("0.00175")),
        # 2,000 input of which 500 read, 1,000 written: 500 x 2.5 + 500 x 1.25 + 1,000 x 3.75
        (
            {"input_tokens": 2000, "cache_read_tokens": 500, "cache_write_tokens": 1000},
            False,
            D("0.005625"),
        ),
        # reasoning is part of output: 400 output (300 reasoning) is billed as 400 output
        ({"output_tokens": 400, "reasoning_tokens": 300}, False, D("0.004")),
        # batch: 1,000 in at $1.25/M and 1,000 out at $5/M
        ({"input_tokens": 1000, "output_tokens": 1000}, True, D("0.00625")),
        # batch has no cache-read rate of its own: the standard one applies
        ({"input_tokens": 1000, "cache_read_tokens": 1000}, True, D("0.00125")),
        # nothing used costs nothing
        ({"input_tokens": 0, "output_tokens": 0}, False, D("0")),
        # a third of a nano-dollar rounds half-even to the nano-dollar
        ({"input_tokens": 1}, False, D("0.000002500")),
    ],
)
def test_token_units_by_hand(usage: dict, batch: bool, expected: Decimal) -> None:
    assert price_usage(CHAT, usage, batch) == expected


def test_a_cache_part_without_its_own_rate_is_billed_as_the_input_it_is_part_of() -> None:
    plain = version(2, "plain", JAN, input_tokens=Rate(D("3"), M), output_tokens=Rate(D("15"), M))
    usage = {"input_tokens": 10_000, "cache_read_tokens": 8_000, "cache_write_tokens": 1_000}
    # 10,000 x $3/M: the cache parts are inside input_tokens, so nothing is counted twice
    assert price_usage(plain, usage) == D("0.03")


def test_a_cache_rate_only_for_batch_calls_leaves_standard_calls_billed_as_input() -> None:
    mixed = version(
        5,
        "mixed",
        JAN,
        input_tokens=Rate(D("2"), M),
        input_tokens__batch=Rate(D("1"), M),
        cache_read_tokens__batch=Rate(D("0.1"), M),
    )
    usage = {"input_tokens": 10_000, "cache_read_tokens": 8_000}
    assert price_usage(mixed, usage) == D("0.02")  # 10,000 x $2/M: no standard cache rate
    assert price_usage(mixed, usage, batch=True) == D("0.0028")  # 2,000 x $1/M + 8,000 x $0.1/M


def test_other_units_by_hand() -> None:
    whisper = version(3, "whisper-1", JAN, audio_seconds=Rate(D("0.006"), 60))
    tts_hd = version(4, "tts-1-hd", JAN, characters=Rate(D("0.030"), 1000))
    images = version(5, "dall-e-3", JAN, images=Rate(D("0.040"), 1))
    places = version(6, "places-details", JAN, requests=Rate(D("17"), 1000))
    # Whisper: $0.006 a minute; 5.5 minutes = $0.033
    assert price_usage(whisper, {"audio_seconds": 330}) == D("0.033")
    assert price_usage(whisper, {"audio_seconds": 12.5}) == D("0.00125")
    # TTS HD: $0.030 per 1K characters; 2,500 characters = $0.075
    assert price_usage(tts_hd, {"characters": 2500}) == D("0.075")
    # DALL-E 3: $0.040 an image
    assert price_usage(images, {"images": 3}) == D("0.12")
    # Places: $17 per 1,000 requests; a call is one request when none is reported
    assert price_usage(places, {}) == D("0.017")
    assert price_usage(places, {"requests": 4}) == D("0.068")


def test_a_unit_without_a_rate_makes_the_call_unpriced_never_zero() -> None:
    assert price_usage(CHAT, {"input_tokens": 10, "images": 2}) is None
    book = PriceBook([CHAT])
    assert book.quote("test", "unknown-model", JUL, {"input_tokens": 10}).cost is None


def test_long_context_tier_bills_all_tokens_at_the_tier_rate() -> None:
    tiered = version(
        7,
        "gemini-pro",
        JAN,
        input_tokens=Rate(D("1.25"), M),
        input_tokens__standard=Rate(D("2.5"), M, tier_above=200_000),
        output_tokens=Rate(D("10"), M),
        output_tokens__standard=Rate(D("15"), M, tier_above=200_000),
    )
    # at the threshold: base rates. 200,000 x 1.25 + 1,000 x 10, per M
    assert price_usage(tiered, {"input_tokens": 200_000, "output_tokens": 1000}) == D("0.26")
    # one token above: every token at the tier's rates. 200,001 x 2.5 + 1,000 x 15, per M
    above = price_usage(tiered, {"input_tokens": 200_001, "output_tokens": 1000})
    assert above == D("0.5150025")


def test_the_version_in_force_at_the_call_time_prices_it() -> None:
    old = version(8, "m", JAN, input_tokens=Rate(D("2"), M))
    new = version(9, "m", JUL, input_tokens=Rate(D("1"), M))
    book = PriceBook([new, old], [("test", "m-2025*", "m", 1)])
    usage = {"input_tokens": M}
    before = book.quote("test", "m", JUL - timedelta(microseconds=1), usage)
    at = book.quote("test", "m", JUL, usage)
    assert (before.cost, before.version_id) == (D("2"), 8)
    assert (at.cost, at.version_id) == (D("1"), 9)
    # before the first version there is no price: unpriced, not $0
    assert book.quote("test", "m", JAN - timedelta(seconds=1), usage).cost is None
    # a dated snapshot name resolves through its pattern, case-insensitively
    assert book.quote("test", "M-2025-03-01", JUL, usage).version_id == 9


def test_a_pattern_whose_model_has_no_prices_leaves_the_call_unpriced() -> None:
    """Prices deleted from the store leave their model patterns behind: a call the pattern
    matches is unpriced (the writer used to raise KeyError on every batch and log a traceback)."""
    book = PriceBook([], [("test", "m-*", "m", 1), ("test", "m-exact", "m", 2)])
    for model in ("m-2025", "m-exact"):
        assert book.quote("test", model, JUL, {"input_tokens": M}).cost is None
        assert book.quote_nanos("test", model, JUL, {"input_tokens": M}) == (None, None)
        assert book.history("test", model) == []


@pytest.fixture
def catalogued(engine: Engine) -> Engine:
    with engine.begin() as conn:
        load_catalogue(conn)
    return engine


def test_catalogue_covers_the_main_providers_and_units(catalogued: Engine) -> None:
    with catalogued.connect() as conn:
        book = load_price_book(conn)
        stored = {(r.provider, r.model) for r in conn.execute(select(price_versions))}
    for provider in ("openai", "anthropic", "google", "mistral", "cohere"):
        assert sum(1 for p, _ in stored if p == provider) >= 5, provider
    at = datetime(2026, 6, 1, tzinfo=UTC)
    # list prices the catalogue lacks, and genai-prices' own Whisper and TTS rows
    assert book.quote("openai", "whisper-1", at, {"audio_seconds": 330}).cost == D("0.033")
    assert book.quote("openai", "tts-1-hd", at, {"characters": 2500}).cost == D("0.075")
    assert book.quote("openai", "dall-e-3", at, {"images": 2}).cost == D("0.08")
    assert book.quote("google", "places-details", at, {}).cost == D("0.017")
    # dated snapshots resolve to their models
    assert book.resolve("anthropic", "claude-3-5-sonnet-20241022") == "claude-3-5-sonnet"
    assert book.resolve("openai", "gpt-4o-2024-08-06") == "gpt-4o"
    # Azure serves OpenAI's models at OpenAI's prices
    usage = {"input_tokens": 1000, "output_tokens": 100}
    assert (
        book.quote("azure", "gpt-4o", at, usage).cost
        == book.quote("openai", "gpt-4o", at, usage).cost
    )


def test_refresh_reports_changes_and_is_idempotent(catalogued: Engine) -> None:
    with catalogued.begin() as conn:
        assert list(refresh_catalogue(conn).lines())[-1].startswith("0 versions added, 0 changed")
        # an upstream correction: the stored rate in force differs from the catalogue
        vid = conn.execute(
            select(price_versions.c.id)
            .where(price_versions.c.provider == "openai", price_versions.c.model == "gpt-4o")
            .order_by(price_versions.c.effective_from.desc())
        ).first()[0]
        conn.execute(
            update(prices)
            .where(prices.c.version_id == vid, prices.c.unit == "input_tokens")
            .values(rate=D("9.99"))
        )
        # and a model dropped from the store entirely
        gone = conn.execute(
            select(price_versions.c.id).where(
                price_versions.c.provider == "openai", price_versions.c.model == "dall-e-2"
            )
        ).scalar_one()
        conn.execute(prices.delete().where(prices.c.version_id == gone))
        conn.execute(price_versions.delete().where(price_versions.c.id == gone))
        lines = list(refresh_catalogue(conn).lines())
    assert any(line.startswith("changed openai/gpt-4o") for line in lines), lines
    assert any(line.startswith("added openai/dall-e-2") for line in lines), lines
    assert lines[-1].startswith("1 versions added, 1 changed")
    with catalogued.begin() as conn:
        # nothing was overwritten: the edited version is still there, a new one is in force
        assert conn.execute(select(prices.c.rate).where(prices.c.version_id == vid)).all()
        book = load_price_book(conn)
        now = datetime.now(UTC) + timedelta(seconds=1)
        cost = book.quote("openai", "gpt-4o", now, {"input_tokens": M}).cost
        assert cost == D("2.5")
        again = list(refresh_catalogue(conn).lines())
    assert again[-1].startswith("0 versions added, 0 changed"), again


def test_prices_refresh_command_prints_what_changed(store_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tracking", "prices", "refresh", "--url", store_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "added openai/gpt-4o from 2000-01-01" in done.stdout
    assert "versions added, 0 changed" in done.stdout.splitlines()[-1]


# ---- the oracle: genai-prices' own calc_price on the same usage ------------------------------

ORACLE_PROVIDERS = ("openai", "anthropic", "google", "mistral", "cohere")
DATES = (
    datetime(2024, 9, 1, 12, tzinfo=UTC),
    datetime(2025, 8, 15, 3, tzinfo=UTC),
    datetime(2026, 11, 1, 18, tzinfo=UTC),
)
SNAPSHOTS = (
    ("openai", "gpt-4o-2024-08-06"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("google", "gemini-2.5-pro"),
    ("deepseek", "deepseek-chat"),
)


def _oracle_records() -> list[tuple[str, str, datetime, dict[str, int], bool]]:
    """At least 50 usage records: several providers, models, dates, cache mixes, tiers, batch."""
    rng = random.Random(20261125)
    refs: list[tuple[str, str]] = list(SNAPSHOTS)
    for provider in ORACLE_PROVIDERS:
        models = [
            m.model
            for m in catalogue_models()
            if m.provider == provider
            and m.versions[0].source.startswith("genai-prices")
            and {"input_tokens", "output_tokens"} <= {r.unit for r in m.versions[-1].rates}
        ]
        refs += [(provider, name) for name in rng.sample(models, min(6, len(models)))]
    records = []
    for provider, ref in refs:
        for at in DATES:
            prompt = rng.choice((900, 12_000, 150_000, 250_000))
            read = rng.choice((0, 0, prompt // 2))
            write = rng.choice((0, prompt // 4)) if provider == "anthropic" else 0
            usage = {
                "input_tokens": prompt,
                "cache_read_tokens": read,
                "cache_write_tokens": write,
                "output_tokens": rng.randint(1, 4000),
            }
            # Deepseek: a time of day when its standard (not off-peak) price is in force
            when = at.replace(hour=9) if provider == "deepseek" else at
            records.append((provider, ref, when, usage, rng.random() < 0.25))
    return records


def test_oracle_matches_genai_prices_to_the_nano_dollar(catalogued: Engine) -> None:
    import genai_prices

    records = _oracle_records()
    assert len(records) >= 50
    assert len({(p, m) for p, m, *_ in records}) >= 25
    with catalogued.connect() as conn:
        book = load_price_book(conn)
    mismatches = []
    for provider, ref, at, usage, batch in records:
        ours = book.quote(provider, ref, at, usage, batch=batch).cost
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = genai_prices.calc_price(
                genai_prices.Usage(**usage),
                ref,
                provider_id=provider,
                genai_request_timestamp=at,
                price_context={"processing": "batch"} if batch else None,
            ).total_price.quantize(NANO, rounding=ROUND_HALF_EVEN)
        if ours != theirs:
            mismatches.append((provider, ref, at, usage, batch, ours, theirs))
    assert not mismatches, mismatches


def test_import_tracking_loads_no_catalogue() -> None:
    code = "import sys, tracking; print(sorted(m for m in ('genai_prices', 'pandas', 'streamlit') if m in sys.modules))"  # noqa: E501
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def _reference_price(
    version: PriceVersion, usage: dict[str, object], batch: bool
) -> Decimal | None:
    """The pricing rules spelt out plainly in Decimals, one unit at a time: what the engine's
    whole-number plans (``tracking.pricing.Plan``) must equal to the nano-dollar."""
    priced = {unit for unit, variant in version.rates if batch or variant == "standard"}
    counts = {
        unit: value if isinstance(value, int | Decimal) else D(repr(value))
        for unit, value in usage.items()
        if value is not None
    }
    if "input_tokens" in counts:
        for part in ("cache_read_tokens", "cache_write_tokens"):
            if part in priced and part in counts:
                counts["input_tokens"] -= counts[part]
    if "requests" in priced and "requests" not in counts:
        counts["requests"] = 1
    total = D(0)
    for unit, count in counts.items():
        if count == 0:
            continue
        tiers = (batch and version.rates.get((unit, "batch"))) or version.rates.get(
            (unit, "standard")
        )
        if not tiers:
            if unit in ("reasoning_tokens", "requests", "cache_read_tokens", "cache_write_tokens"):
                continue
            return None
        above = int(usage.get("input_tokens") or 0)
        rate = next((t for t in tiers if t.tier_above == 0 or above > t.tier_above), tiers[-1])
        total += count * rate.rate / rate.per
    return total.quantize(NANO, rounding=ROUND_HALF_EVEN)


def random_usage(rng: random.Random, units: list[str]) -> tuple[dict[str, object], bool]:
    """A call's usage of every kind the engine meets (tiers, cache parts, None and 0, other
    units with fractional counts), and whether it is a batch call."""
    prompt = rng.choice((0, 7, 999, 128_001, 200_001, rng.randint(0, 2_000_000)))
    usage: dict[str, object] = {
        "input_tokens": prompt,
        "cache_read_tokens": rng.choice((None, 0, prompt // 3)),
        "cache_write_tokens": rng.choice((None, 0, prompt // 7)),
        "output_tokens": rng.choice((None, 0, rng.randint(1, 100_000))),
        "reasoning_tokens": rng.choice((None, 0, 5)),
    }
    for unit in units:
        if unit not in usage and rng.random() < 0.3:
            usage[unit] = rng.choice((1, 3, 330, 2500, 12.5, 0.1, 1 / 3, D("7.25")))
    return usage, rng.random() < 0.3


def test_every_catalogue_version_prices_as_the_plain_decimal_rules(catalogued: Engine) -> None:
    """Random usages of every unit, tier and variant, fractional counts included, priced by the
    engine and by the reference above: equal in value and in digits, for every version."""
    with catalogued.connect() as conn:
        book = load_price_book(conn)
    versions = [v for history in book._versions.values() for v in history]
    units = sorted({unit for v in versions for unit, _ in v.rates})
    assert len(versions) > 500 and {"audio_seconds", "characters", "requests"} <= set(units)
    rng = random.Random(7)
    mismatches = []
    for v in versions:
        for _ in range(12):
            usage, batch = random_usage(rng, units)
            ours, plain = price_usage(v, usage, batch), _reference_price(v, usage, batch)
            if ours != plain or str(ours) != str(plain):
                mismatches.append((v.provider, v.model, usage, batch, ours, plain))
    assert not mismatches, mismatches[:5]

"""The reference price catalogue: the bundled data of genai-prices, plus list prices it lacks.

Only ``python -m tracking migrate`` and ``prices refresh`` import this module (and genai-prices
with it): a host app that imports ``tracking`` never pays for it.

How genai-prices maps onto the store:
- each model's dated price changes (``StartDateConstraint``) become price versions, and the batch
  variant (``processing: batch``) becomes the ``batch`` rates of each version, so a call is priced
  with what was in force at its time;
- context tiers (``TieredPrices``) become rates with ``tier_above``;
- match rules (equals, starts/ends with, contains, simple regexes) become name patterns, in the
  catalogue's order, so dated snapshot names resolve to their model;
- a provider that falls back to another's models (Azure serves OpenAI's) gets copies of them.
Not represented: time-of-day prices (DeepSeek's off-peak hours: the price in force for most of
the day is kept),
service tiers other than batch, and token sub-kinds (audio, image, video tokens, 1-hour cache
writes): those tokens are billed at the plain input or output rate they are part of.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from tracking.price_store import RateRow

# Providers whose prices we import: the first-party APIs and the clouds that resell them.
PROVIDERS = (
    "openai",
    "anthropic",
    "google",
    "mistral",
    "cohere",
    "deepseek",
    "x-ai",
    "groq",
    "perplexity",
    "azure",
    "aws",
)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
BATCH_CONTEXT = {"processing": "batch"}

# genai-prices price key -> (our unit, units per rate). Anything else is not represented.
PRICE_KEYS: dict[str, tuple[str, int]] = {
    "input_mtok": ("input_tokens", 1_000_000),
    "output_mtok": ("output_tokens", 1_000_000),
    "cache_read_mtok": ("cache_read_tokens", 1_000_000),
    "cache_write_mtok": ("cache_write_tokens", 1_000_000),
    "audio_hours": ("audio_seconds", 3_600),
    "input_mchars": ("characters", 1_000_000),
    "requests_kcount": ("requests", 1_000),
    "web_searches_kcount": ("web_searches", 1_000),
    "storage_searches_kcount": ("storage_searches", 1_000),
    "code_executions_kcount": ("code_executions", 1_000),
    "rerank_searches_kcount": ("rerank_searches", 1_000),
    "input_document_kpages": ("document_pages", 1_000),
}
# used only where the model has no plain audio_hours price (it is a part of audio seconds)
INPUT_AUDIO_HOURS = "input_audio_hours"


@dataclass(frozen=True)
class CatalogueVersion:
    provider: str
    model: str
    effective_from: datetime
    rates: tuple[RateRow, ...]
    source: str
    note: str | None = None


@dataclass
class CatalogueModel:
    provider: str
    model: str
    versions: list[CatalogueVersion]
    patterns: list[str]


# List prices of units genai-prices lacks: DALL·E images and Google Maps Places requests.
LIST_PRICE_SOURCE = "list price"
LIST_PRICES: tuple[tuple[str, str, tuple[RateRow, ...], str], ...] = (
    (
        "openai",
        "dall-e-3",
        (
            RateRow("images", Decimal("0.040"), 1),
            RateRow("images", Decimal("0.020"), 1, variant="batch"),
        ),
        "standard quality, 1024x1024, per image",
    ),
    ("openai", "dall-e-2", (RateRow("images", Decimal("0.020"), 1),), "1024x1024, per image"),
    (
        "google",
        "places-details",
        (RateRow("requests", Decimal("17"), 1_000),),
        "Place Details (Pro), $17 per 1,000 requests",
    ),
    (
        "google",
        "places-text-search",
        (RateRow("requests", Decimal("32"), 1_000),),
        "Text Search (Pro), $32 per 1,000 requests",
    ),
    (
        "google",
        "places-nearby-search",
        (RateRow("requests", Decimal("32"), 1_000),),
        "Nearby Search (Pro), $32 per 1,000 requests",
    ),
    (
        "google",
        "places-autocomplete",
        (RateRow("requests", Decimal("2.83"), 1_000),),
        "Autocomplete requests, $2.83 per 1,000",
    ),
)


def _rate_rows(price: Any, variant: str = "standard") -> list[RateRow]:
    """The rates of one genai-prices ModelPrice that the engine represents."""
    from genai_prices.types import TieredPrices

    values = {k: v for k, v in vars(price).items() if v is not None and not k.startswith("_")}
    keys = dict(PRICE_KEYS)
    if "audio_hours" not in values and INPUT_AUDIO_HOURS in values:
        keys[INPUT_AUDIO_HOURS] = ("audio_seconds", 3_600)
    rows: list[RateRow] = []
    for key, value in values.items():
        if key not in keys:
            continue
        unit, per = keys[key]
        if isinstance(value, TieredPrices):
            rows.append(RateRow(unit, value.base, per, 0, variant))
            rows.extend(RateRow(unit, t.price, per, t.start, variant) for t in value.tiers)
        else:
            rows.append(RateRow(unit, value, per, 0, variant))
    return rows


def _breakpoints(model: Any) -> list[datetime]:
    """Every moment the model's standard or batch prices change, from the epoch on."""
    from genai_prices.types import StartDateConstraint

    days: set[date] = set()
    conditionals = model.prices if isinstance(model.prices, list) else []
    for variant in [*conditionals, *(model.price_variants or [])]:
        if isinstance(variant.constraint, StartDateConstraint):
            days.add(variant.constraint.start_date)
    moments = {datetime.combine(d, time(0), tzinfo=UTC) for d in days}
    return sorted({EPOCH} | {m for m in moments if m > EPOCH})


def _has_time_of_day(model: Any) -> bool:
    from genai_prices.types import TimeOfDateConstraint

    conditionals = model.prices if isinstance(model.prices, list) else []
    return any(
        isinstance(p.constraint, TimeOfDateConstraint)
        for p in [*conditionals, *(model.price_variants or [])]
    )


def _prices_at(model: Any, moment: datetime, context: dict[str, str] | None = None) -> Any:
    """The model's prices from ``moment`` on. Where they vary by time of day (DeepSeek's off-peak
    hours), the engine cannot follow: take the prices in force for most of the day."""
    if not _has_time_of_day(model):
        return model.get_prices(moment, context)
    samples = [
        model.get_prices(moment + timedelta(minutes=15 + 30 * k), context) for k in range(48)
    ]
    return max(samples, key=lambda price: sum(1 for other in samples if other == price))


def _versions(provider: str, model: Any, source: str) -> list[CatalogueVersion]:
    """The model's price history as versions; consecutive identical rate sets are merged."""
    found: list[CatalogueVersion] = []
    for moment in _breakpoints(model):
        standard = _prices_at(model, moment)
        rows = _rate_rows(standard)
        standard_rates = {(r.unit, r.tier_above): r for r in rows}
        if model.price_variants:
            batch = _rate_rows(_prices_at(model, moment, BATCH_CONTEXT), "batch")
            rows += [
                r
                for r in batch
                if (r.unit, r.tier_above) not in standard_rates
                or standard_rates[(r.unit, r.tier_above)].rate != r.rate
            ]
        if not rows:
            continue
        rates = tuple(sorted(rows, key=_rate_key))
        if found and found[-1].rates == rates:
            continue
        found.append(CatalogueVersion(provider, model.id, moment, rates, source))
    return found


def _rate_key(r: RateRow) -> tuple[str, str, int]:
    return (r.unit, r.variant, r.tier_above)


def _escape(text: str) -> str:
    """A literal name as an fnmatch pattern."""
    return re.sub(r"([*?\[])", r"[\1]", text.lower())


_REGEX_TOKEN = re.compile(r"\\d\{(\d+)\}|\\d|\\(.)|\[([^\]\\]+)\]|([A-Za-z0-9_\-:/@ ])")


def _regex_glob(regex: str) -> str | None:
    """Translate the simple regexes the catalogue uses (anchors, \\d, \\d{n}, classes, escaped
    literals) to a glob; None for anything richer (lookaheads, groups, alternation)."""
    body = regex
    start_anchored = body.startswith("^")
    end_anchored = body.endswith("$") and not body.endswith("\\$")
    body = body[1 if start_anchored else 0 : len(body) - 1 if end_anchored else len(body)]
    out: list[str] = []
    pos = 0
    while pos < len(body):
        m = _REGEX_TOKEN.match(body, pos)
        if m is None:
            return None
        if m.group(1):
            out.append("[0-9]" * int(m.group(1)))
        elif m.group(0) == "\\d":
            out.append("[0-9]")
        elif m.group(2) is not None:
            out.append(_escape(m.group(2)))
        elif m.group(3) is not None:
            out.append(f"[{m.group(3).lower()}]")
        else:
            out.append(_escape(m.group(4)))
        pos = m.end()
    glob = "".join(out)
    return ("" if start_anchored else "*") + glob + ("" if end_anchored else "*")


def _globs(clause: Any) -> list[str] | None:
    """The globs one match clause stands for; None when it cannot be expressed."""
    from genai_prices import types as t

    if isinstance(clause, t.ClauseEquals):
        return [_escape(clause.equals)]
    if isinstance(clause, t.ClauseStartsWith):
        return [_escape(clause.starts_with) + "*"]
    if isinstance(clause, t.ClauseEndsWith):
        return ["*" + _escape(clause.ends_with)]
    if isinstance(clause, t.ClauseContains):
        return ["*" + _escape(clause.contains) + "*"]
    if isinstance(clause, t.ClauseRegex):
        glob = _regex_glob(clause.regex)
        return None if glob is None else [glob]
    if isinstance(clause, t.ClauseOr):
        found: list[str] = []
        for sub in clause.or_:
            found += _globs(sub) or []
        return found
    if isinstance(clause, t.ClauseAnd):
        # keep the parts that narrow by prefix: the rest (e.g. "not a TTS model") is left to
        # the more exact patterns of the models it excludes, which resolve first
        parts = [g for sub in clause.and_ for g in (_globs(sub) or [])]
        return parts[:1] or None
    return None


def _patterns(model: Any) -> list[str]:
    found = [_escape(model.id)]
    for glob in _globs(model.match) or []:
        if glob not in found:
            found.append(glob)
    return found


def catalogue_models() -> list[CatalogueModel]:
    """Every model of the catalogue with its versions and name patterns, in catalogue order."""
    import genai_prices
    from genai_prices.data import providers

    source = f"genai-prices {genai_prices.__version__}"
    by_id = {p.id: p for p in providers}
    found: list[CatalogueModel] = []
    for provider_id in PROVIDERS:
        provider = by_id.get(provider_id)
        if provider is None:
            continue
        models = list(provider.models)
        own = {m.id for m in models}
        for fallback in provider.fallback_model_providers or []:
            extra = by_id.get(fallback)
            models += [m for m in (extra.models if extra else []) if m.id not in own]
            own |= {m.id for m in models}
        for model in models:
            versions = _versions(provider_id, model, source)
            if versions:
                found.append(CatalogueModel(provider_id, model.id, versions, _patterns(model)))
    for provider_id, name, rates, note in LIST_PRICES:
        version = CatalogueVersion(provider_id, name, EPOCH, rates, LIST_PRICE_SOURCE, note)
        found.append(CatalogueModel(provider_id, name, [version], [_escape(name)]))
    return found

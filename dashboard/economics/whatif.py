"""What-if simulation: the last N days of usage (a Baseline) carried forward month by month under
a scenario's levers, with exact money, a bootstrap band and a tornado of the levers.

Pure: no Streamlit, no SQL (``dashboard.whatif_data`` reads the baseline, ``dashboard.scenarios``
stores levers). How a line's cost moves: its recorded cost stays the starting point, so a
scenario that changes nothing reproduces the baseline exactly (provider-reported costs and old
price versions included). A lever that changes tokens (cache hits, output length) or rates (a
draft price) adds the difference of the line's tokens priced at the old and the new rates; a
line moved to another model is priced whole from that model's rates. A percent price change
multiplies the result; growth and usage per user scale the volume. Rates are linear per token
(a tier's threshold is not modelled: the lowest tier's rates are used).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from dashboard.economics.money import AVERAGE_MONTH_DAYS, _allocate, _nanos, _pct
from tracking.sqltypes import NANOS_PER_DOLLAR, from_nanos

if TYPE_CHECKING:
    from datetime import datetime

    from tracking.pricing import PriceBook

RATE_UNITS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
PER_MILLION = 1_000_000
MAX_HORIZON = 12
MAX_PCT = Decimal(1000)
MAX_RATIO = Decimal(100)
BAND_PCTS = (5.0, 95.0)  # a 90% band
BOOTSTRAP_DAYS = 30  # days drawn per simulated month
PERIOD_MONTHS = {"month": Fraction(1), "week": AVERAGE_MONTH_DAYS / 7, "day": AVERAGE_MONTH_DAYS}
Rates = Mapping[str, Mapping[str, Fraction]]  # "provider/model" -> unit -> dollars per token


class LeverError(ValueError):
    """A lever refused: ``field`` names which, ``reason`` says why. Nothing was simulated."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class BaselineLine:
    """The window's usage of one feature on one model by one plan's users (plan None: users on
    no plan): totals over the window; ``cost_nanos`` is the priced calls' cost."""

    feature: str
    provider: str
    model: str
    plan: str | None
    calls: int
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanos: int = 0
    unpriced_calls: int = 0

    @property
    def model_key(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class Baseline:
    """The last ``days`` days of usage: ``lines`` by feature, model and plan, the cost of each day
    (oldest first, days without calls 0) for the bootstrap, and what each plan's active
    customers pay a month now (the plans' revenue, for their margins)."""

    lines: tuple[BaselineLine, ...]
    daily_nanos: tuple[int, ...]
    plan_revenue: Mapping[str, Decimal] = field(default_factory=dict)

    @property
    def days(self) -> int:
        return len(self.daily_nanos)

    @property
    def cost(self) -> Decimal:
        return from_nanos(sum(line.cost_nanos for line in self.lines))

    @property
    def monthly_cost(self) -> Decimal:
        """The window's cost per average month (x 365.25 / 12 / days), to the nano-dollar."""
        total = sum(line.cost_nanos for line in self.lines)
        return from_nanos(
            _nanos(Fraction(total, NANOS_PER_DOLLAR) * AVERAGE_MONTH_DAYS / self.days)
        )


@dataclass(frozen=True)
class Move:
    """Move ``feature`` (its calls on ``from_model``, or on every model when None) to
    ``to_model``, both "provider/model": its input and output tokens times the ratios."""

    feature: str
    to_model: str
    from_model: str | None = None
    input_ratio: Decimal = Decimal(1)
    output_ratio: Decimal = Decimal(1)


@dataclass(frozen=True)
class Levers:
    """A scenario. Percents are Decimals (``Decimal("10")`` is +10 %); ``price_pct`` and
    ``draft_prices`` are keyed by "provider/model"; a draft gives dollars per 1M tokens of some
    of ``RATE_UNITS`` (the others keep the current rate); ``cache_hit_pct`` the share of input
    tokens read from cache (None: as in the baseline)."""

    horizon_months: int = MAX_HORIZON
    price_pct: Mapping[str, Decimal] = field(default_factory=dict)
    draft_prices: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    moves: tuple[Move, ...] = ()
    user_growth_pct: Decimal = Decimal(0)  # per month, compounding
    usage_per_user_pct: Decimal = Decimal(0)
    cache_hit_pct: Decimal | None = None
    output_length_pct: Decimal = Decimal(0)


@dataclass(frozen=True)
class BudgetLimit:
    """A budget as the simulator sees it: its limit per average month, and a scope on what a
    projection has (None: any)."""

    name: str
    monthly_limit: Decimal
    feature: str | None = None
    provider: str | None = None
    model: str | None = None


def monthly_limit(limit: Decimal, period: str) -> Decimal:
    """A day's or an ISO week's limit as a month's (x 365.25 / 12, / 7), to the nano-dollar."""
    return from_nanos(_nanos(Fraction(limit) * PERIOD_MONTHS[period]))


# --- validation ---------------------------------------------------------------------------------


def _number(name: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise LeverError(name, f"{value!r} is not a number")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise LeverError(name, f"{value!r} is not a number") from None
    if not number.is_finite():
        raise LeverError(name, f"{value!r} must be a finite number")
    return number


def _pct_lever(name: str, value: Any, low: Decimal = Decimal(-100)) -> Decimal:
    """A percent change above ``low`` (-100 %: nothing left) and at most +1000 %."""
    number = _number(name, value)
    if not low < number <= MAX_PCT:
        raise LeverError(name, f"{number}% is outside the range above {low}% up to {MAX_PCT}%")
    return number


def _model_key(name: str, key: Any) -> str:
    if not isinstance(key, str) or key.count("/") < 1 or "" in key.split("/", 1):
        raise LeverError(name, f"{key!r} is not a model as provider/model (openai/gpt-4o)")
    return key


def validate_levers(levers: Levers, rates: Rates | None) -> Levers:
    """The levers checked and normalised (Decimals), or LeverError naming the first wrong one.
    A feature can only move to a model with a price (current or drafted); ``rates`` None (a
    scenario stored for later) leaves that to the simulation."""
    horizon = levers.horizon_months
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= MAX_HORIZON:
        raise LeverError("horizon_months", f"{horizon!r} is not a whole 1 to {MAX_HORIZON} months")
    price = {
        _model_key("price_pct", k): _pct_lever(f"price_pct[{k}]", v)
        for k, v in levers.price_pct.items()
    }
    drafts: dict[str, dict[str, Decimal]] = {}
    for key, units in levers.draft_prices.items():
        _model_key("draft_prices", key)
        drafts[key] = {}
        for unit, rate in units.items():
            if unit not in RATE_UNITS:
                raise LeverError(f"draft_prices[{key}]", f"{unit!r} is not one of {RATE_UNITS}")
            amount = _number(f"draft_prices[{key}][{unit}]", rate)
            if amount < 0:
                raise LeverError(f"draft_prices[{key}][{unit}]", f"{amount} must not be negative")
            drafts[key][unit] = amount
    moves = []
    seen: set[tuple[str, str | None]] = set()
    for move in levers.moves:
        if not isinstance(move.feature, str) or not move.feature:
            raise LeverError("moves", "a move names the feature it moves")
        target = _model_key("moves", move.to_model)
        if move.from_model is not None:
            _model_key("moves", move.from_model)
        if rates is not None and target not in rates and target not in drafts:
            raise LeverError("moves", f"{target} has no price: a feature moves to a priced model")
        if (move.feature, move.from_model) in seen:
            raise LeverError("moves", f"{move.feature} is moved twice from the same model")
        seen.add((move.feature, move.from_model))
        ratios = []
        for name in ("input_ratio", "output_ratio"):
            ratio = _number(f"moves.{name}", getattr(move, name))
            if not 0 < ratio <= MAX_RATIO:
                raise LeverError(f"moves.{name}", f"{ratio} is outside the range above 0 to 100")
            ratios.append(ratio)
        moves.append(replace(move, input_ratio=ratios[0], output_ratio=ratios[1]))
    cache = None
    if levers.cache_hit_pct is not None:
        cache = _number("cache_hit_pct", levers.cache_hit_pct)
        if not 0 <= cache <= 100:
            raise LeverError("cache_hit_pct", f"{cache}% is not a share from 0 to 100%")
    return Levers(
        horizon_months=horizon,
        price_pct=price,
        draft_prices=drafts,
        moves=tuple(moves),
        user_growth_pct=_pct_lever("user_growth_pct", levers.user_growth_pct),
        usage_per_user_pct=_pct_lever("usage_per_user_pct", levers.usage_per_user_pct),
        cache_hit_pct=cache,
        output_length_pct=_pct_lever("output_length_pct", levers.output_length_pct),
    )


# --- pricing ------------------------------------------------------------------------------------


def rates_from_book(
    book: PriceBook, models: Iterable[str], at: datetime
) -> dict[str, dict[str, Fraction]]:
    """The standard token rates (dollars per token, the lowest tier) in force at ``at`` of each
    "provider/model" the book prices; models it cannot price are left out."""
    found: dict[str, dict[str, Fraction]] = {}
    for key in models:
        provider, model = key.split("/", 1)
        version = book.version_at(provider, model, at)
        if version is None:
            continue
        found[key] = {
            unit: Fraction(tiers[-1].rate) / tiers[-1].per
            for (unit, variant), tiers in version.rates.items()
            if variant == "standard" and unit in RATE_UNITS and tiers
        }
    return found


def _tokens(line: BaselineLine) -> dict[str, Fraction]:
    return {u: Fraction(getattr(line, u)) for u in RATE_UNITS}


def _price(rates: Mapping[str, Fraction], tokens: Mapping[str, Fraction]) -> Fraction:
    """Dollars for ``tokens`` at linear ``rates``: a cache part with a rate of its own comes out
    of the input tokens (the engine's rule), one without stays billed inside them."""
    total = Fraction(0)
    plain = tokens["input_tokens"]
    for part in ("cache_read_tokens", "cache_write_tokens"):
        if part in rates:
            plain -= tokens[part]
            total += tokens[part] * rates[part]
    total += plain * rates.get("input_tokens", Fraction(0))
    return total + tokens["output_tokens"] * rates.get("output_tokens", Fraction(0))


def _drafted(rates: Rates, levers: Levers) -> dict[str, Mapping[str, Fraction]]:
    merged: dict[str, Mapping[str, Fraction]] = dict(rates)
    for key, units in levers.draft_prices.items():
        merged[key] = {
            **rates.get(key, {}),
            **{u: Fraction(r) / PER_MILLION for u, r in units.items()},
        }
    return merged


def _move_for(line: BaselineLine, moves: Sequence[Move]) -> Move | None:
    """The move of the line's feature from its model, else from any model, else None."""
    mine = [m for m in moves if m.feature == line.feature]
    exact = [m for m in mine if m.from_model == line.model_key]
    return next(iter(exact or [m for m in mine if m.from_model is None]), None)


@dataclass(frozen=True)
class _Line:
    """One baseline line under the levers, per average month at the baseline's volume."""

    feature: str
    model_key: str  # after a move
    plan: str | None
    cost: Fraction  # dollars
    calls: Fraction
    unpriced_calls: Fraction


def _lines(baseline: Baseline, levers: Levers, rates: Rates) -> tuple[list[_Line], list[str]]:
    new_rates = _drafted(rates, levers)
    month = AVERAGE_MONTH_DAYS / baseline.days
    output = 1 + Fraction(levers.output_length_pct) / 100
    hit = None if levers.cache_hit_pct is None else Fraction(levers.cache_hit_pct) / 100
    result, notes = [], []
    for line in baseline.lines:
        old = _tokens(line)
        new = dict(old)
        new["output_tokens"] *= output
        if hit is not None:
            new["cache_read_tokens"] = new["input_tokens"] * hit
            new["cache_write_tokens"] = min(
                new["cache_write_tokens"], new["input_tokens"] * (1 - hit)
            )
        move = _move_for(line, levers.moves)
        key, unpriced = line.model_key, Fraction(line.unpriced_calls)
        recorded = Fraction(line.cost_nanos, NANOS_PER_DOLLAR)
        if move is not None:
            key = move.to_model
            for unit in ("input_tokens", "cache_read_tokens", "cache_write_tokens"):
                new[unit] *= Fraction(move.input_ratio)
            new["output_tokens"] *= Fraction(move.output_ratio)
            cost, unpriced = _price(new_rates[key], new), Fraction(0)
        elif key not in new_rates:
            cost = recorded
            if new != old:
                notes.append(f"{key} has no price: the token levers leave its cost as it was")
        elif key not in rates:
            cost, unpriced = _price(new_rates[key], new), Fraction(0)
        else:
            cost = recorded + _price(new_rates[key], new) - _price(rates[key], old)
        cost *= 1 + Fraction(levers.price_pct.get(key, 0)) / 100
        result.append(
            _Line(line.feature, key, line.plan, cost * month, line.calls * month, unpriced * month)
        )
    return result, sorted(set(notes))


def _volumes(levers: Levers) -> list[Fraction]:
    """Each month's volume against the baseline's: users grown (compounding, month 1 grown once)
    times the usage per user."""
    growth = 1 + Fraction(levers.user_growth_pct) / 100
    usage = 1 + Fraction(levers.usage_per_user_pct) / 100
    return [growth**m * usage for m in range(1, levers.horizon_months + 1)]


# --- the projection -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthCost:
    """One projected month: its exact cost, the band around it, and its cost by (feature,
    model, plan), the parts summing exactly to ``cost``."""

    month: int  # 1 = the month after the baseline
    cost: Decimal
    low: Decimal
    high: Decimal
    calls: int
    unpriced_calls: int
    parts: Mapping[tuple[str, str, str | None], Decimal]


@dataclass(frozen=True)
class PlanMonth:
    plan: str
    month: int
    revenue: Decimal
    ai_cost: Decimal
    margin: Decimal
    margin_pct: Decimal | None


@dataclass(frozen=True)
class BudgetBreak:
    """When a budget's projected monthly spend first goes over its limit (None: never)."""

    budget: str
    monthly_limit: Decimal
    month: int | None
    cost: Decimal | None  # that month's projected spend in the budget's scope


@dataclass(frozen=True)
class Projection:
    levers: Levers
    months: list[MonthCost]
    plans: list[PlanMonth]
    budgets: list[BudgetBreak]
    notes: list[str]

    @property
    def total(self) -> Decimal:
        return sum((m.cost for m in self.months), Decimal(0))


def bootstrap_ratios(daily_nanos: Sequence[int], months: int, draws: int, seed: int) -> np.ndarray:
    """Per month, the low and high (``BAND_PCTS``) of a month's cost relative to the baseline's
    average day: each draw's month is ``BOOTSTRAP_DAYS`` days drawn from the baseline's days
    with replacement (seeded). Shape (months, 2); all 1 without draws or without cost."""
    days = np.asarray(daily_nanos, dtype=np.float64)
    mean = days.mean() if len(days) else 0.0
    if draws <= 0 or mean <= 0:
        return np.ones((months, 2))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(days), size=(months, draws, BOOTSTRAP_DAYS))
    ratios = days[picks].mean(axis=2) / mean
    return np.percentile(ratios, BAND_PCTS, axis=1).T


def _scaled(nanos: int, ratio: float) -> Decimal:
    return from_nanos(round(Fraction(nanos) * Fraction(ratio)))


def _in_scope(budget: BudgetLimit, feature: str, model_key: str) -> bool:
    provider, model = model_key.split("/", 1)
    return all(
        want is None or want == have
        for want, have in (
            (budget.feature, feature),
            (budget.provider, provider),
            (budget.model, model),
        )
    )


def simulate(
    baseline: Baseline,
    levers: Levers,
    rates: Rates,
    budgets: Iterable[BudgetLimit] = (),
    draws: int = 1000,
    seed: int = 0,
) -> Projection:
    """The scenario's cost per month over its horizon, exact, with a bootstrap band (``draws``
    draws, ``seed``), the margin of each plan with revenue, and when each budget breaks.

    Raises LeverError for a bad lever or an empty baseline window (nothing simulated)."""
    if baseline.days < 1:
        raise LeverError("days", "the baseline needs at least one day")
    levers = validate_levers(levers, rates)
    lines, notes = _lines(baseline, levers, rates)
    volumes = _volumes(levers)
    band = bootstrap_ratios(baseline.daily_nanos, levers.horizon_months, draws, seed)
    growth = 1 + Fraction(levers.user_growth_pct) / 100
    months, plans = [], []
    for m, volume in enumerate(volumes, start=1):
        shares = [line.cost * volume for line in lines]
        total = _nanos(sum(shares, Fraction(0)))
        parts: dict[tuple[str, str, str | None], int] = {}
        for line, nanos in zip(lines, _allocate(total, shares) if lines else [], strict=True):
            key = (line.feature, line.model_key, line.plan)
            parts[key] = parts.get(key, 0) + nanos
        low, high = band[m - 1]
        months.append(
            MonthCost(
                month=m,
                cost=from_nanos(total),
                low=_scaled(total, float(low)),
                high=_scaled(total, float(high)),
                calls=round(sum((line.calls for line in lines), Fraction(0)) * volume),
                unpriced_calls=round(
                    sum((line.unpriced_calls for line in lines), Fraction(0)) * volume
                ),
                parts={k: from_nanos(v) for k, v in parts.items()},
            )
        )
        for plan, revenue in baseline.plan_revenue.items():
            earned = _nanos(Fraction(revenue) * growth**m)
            cost = sum(v for (_, _, p), v in parts.items() if p == plan)
            plans.append(
                PlanMonth(
                    plan, m, from_nanos(earned), from_nanos(cost), from_nanos(earned - cost),
                    _pct(earned - cost, earned),
                )
            )  # fmt: skip
    breaks = []
    for budget in budgets:
        found = None
        for month in months:
            spend = sum(
                (v for (f, k, _), v in month.parts.items() if _in_scope(budget, f, k)), Decimal(0)
            )
            if spend > budget.monthly_limit:
                found = (month.month, spend)
                break
        breaks.append(
            BudgetBreak(budget.name, budget.monthly_limit, *(found if found else (None, None)))
        )
    return Projection(levers, months, plans, breaks, notes)


# --- sensitivity --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TornadoRow:
    """The horizon's total cost with one lever at its low and at its high, the others as in the
    scenario: ``swing`` is how far apart the two are."""

    lever: str
    low_value: str
    high_value: str
    low_total: Decimal
    high_total: Decimal

    @property
    def swing(self) -> Decimal:
        return abs(self.high_total - self.low_total)


def _horizon_total(baseline: Baseline, levers: Levers, rates: Rates) -> Decimal:
    lines, _ = _lines(baseline, levers, rates)
    cost = sum((line.cost for line in lines), Fraction(0))
    return from_nanos(_nanos(cost * sum(_volumes(levers), Fraction(0))))


def cache_share(baseline: Baseline) -> Decimal:
    """The baseline's share of input tokens read from cache, in percent (0.01)."""
    read = sum(line.cache_read_tokens for line in baseline.lines)
    total = sum(line.input_tokens for line in baseline.lines)
    return _pct(read, total) or Decimal(0)


def sensitivity(
    baseline: Baseline, levers: Levers, rates: Rates, top_models: int = 5
) -> list[TornadoRow]:
    """Each lever alone moved to a low and a high around the scenario (growth and cache hits
    by 5 and 20 points, usage and output length by 20 %, the price of each of the
    ``top_models`` costliest models by 10 points), the biggest swing first."""
    levers = validate_levers(levers, rates)
    cache = levers.cache_hit_pct if levers.cache_hit_pct is not None else cache_share(baseline)
    pct = Decimal(-100)

    def around(
        value: Decimal, step: int, low: Decimal = pct, high: Decimal = MAX_PCT
    ) -> tuple[Decimal, Decimal]:
        return max(value - step, low + Decimal("0.01")), min(value + step, high)

    trials: list[tuple[str, list[tuple[str, Levers]]]] = []
    for name, attr, step in (
        ("User growth / month", "user_growth_pct", 5),
        ("Usage per user", "usage_per_user_pct", 20),
        ("Output length", "output_length_pct", 20),
    ):
        lo, hi = around(getattr(levers, attr), step)
        trials.append(
            (
                name,
                [
                    (f"{v:+}%", replace(levers, **{attr: v}))  # type: ignore[arg-type]
                    for v in (lo, hi)
                ],
            )
        )
    lo, hi = around(cache, 20, Decimal(0) - Decimal("0.01"), Decimal(100))
    trials.append(
        ("Cache-hit rate", [(f"{v}%", replace(levers, cache_hit_pct=v)) for v in (lo, hi)])
    )
    by_model: dict[str, int] = {}
    for line in baseline.lines:
        by_model[line.model_key] = by_model.get(line.model_key, 0) + line.cost_nanos
    for key in sorted(by_model, key=lambda k: (-by_model[k], k))[:top_models]:
        lo, hi = around(Decimal(levers.price_pct.get(key, 0)), 10)
        trials.append(
            (
                f"Price of {key}",
                [
                    (f"{v:+}%", replace(levers, price_pct={**levers.price_pct, key: v}))
                    for v in (lo, hi)
                ],
            )
        )
    rows = []
    for name, ((low_label, low), (high_label, high)) in trials:
        rows.append(
            TornadoRow(
                name,
                low_label,
                high_label,
                _horizon_total(baseline, low, rates),
                _horizon_total(baseline, high, rates),
            )
        )
    return sorted(rows, key=lambda r: (-r.swing, r.lever))


# --- levers as JSON (the scenarios table's params) ---------------------------------------------


def levers_to_params(levers: Levers) -> dict[str, Any]:
    """Levers as JSON values: every number a decimal string, never a float."""
    return {
        "horizon_months": levers.horizon_months,
        "price_pct": {k: str(v) for k, v in levers.price_pct.items()},
        "draft_prices": {
            k: {u: str(r) for u, r in units.items()} for k, units in levers.draft_prices.items()
        },
        "moves": [
            {
                "feature": m.feature,
                "to_model": m.to_model,
                "from_model": m.from_model,
                "input_ratio": str(m.input_ratio),
                "output_ratio": str(m.output_ratio),
            }
            for m in levers.moves
        ],
        "user_growth_pct": str(levers.user_growth_pct),
        "usage_per_user_pct": str(levers.usage_per_user_pct),
        "cache_hit_pct": None if levers.cache_hit_pct is None else str(levers.cache_hit_pct),
        "output_length_pct": str(levers.output_length_pct),
    }


def levers_from_params(params: Any) -> Levers:
    """Levers from their JSON (``levers_to_params``); LeverError for anything else. Values are
    kept as given: ``validate_levers`` checks them against the rates."""
    if not isinstance(params, dict):
        raise LeverError("params", "scenario parameters are a JSON object")
    known = set(levers_to_params(Levers()))
    unknown = sorted(set(params) - known)
    if unknown:
        raise LeverError("params", f"unknown lever(s): {', '.join(unknown)}")
    try:
        moves = tuple(Move(**m) for m in params.get("moves", []))
        values = {k: v for k, v in params.items() if k != "moves"}
        levers = Levers(**values, moves=moves)
    except TypeError as exc:
        raise LeverError("params", f"not scenario parameters ({exc})") from None
    for name in ("price_pct", "draft_prices"):
        if not isinstance(getattr(levers, name), dict):
            raise LeverError(name, "must be an object keyed by provider/model")
    return levers

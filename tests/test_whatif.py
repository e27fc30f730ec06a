"""The what-if simulator: exact money under each lever, the band, the tornado, bad levers."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest

from dashboard.economics.money import AVERAGE_MONTH_DAYS, _nanos
from dashboard.economics.whatif import (
    Baseline,
    BaselineLine,
    BudgetLimit,
    LeverError,
    Levers,
    Move,
    levers_from_params,
    levers_to_params,
    sensitivity,
    simulate,
)
from dashboard.md_escape import md_plain
from tracking.sqltypes import NANOS_PER_DOLLAR, from_nanos

# dollars per token: $2.50 / $10 per 1M, and a model at exactly half of both
RATES = {
    "openai/gpt-4o": {
        "input_tokens": Fraction(25, 10_000_000),
        "output_tokens": Fraction(1, 100_000),
    },
    "openai/half": {
        "input_tokens": Fraction(125, 100_000_000),
        "output_tokens": Fraction(5, 1_000_000),
    },
}


def line(
    feature: str, model: str, plan: str | None, calls: int, inp: int, out: int
) -> BaselineLine:
    rates = RATES[f"openai/{model}"]
    cost = inp * rates["input_tokens"] + out * rates["output_tokens"]
    return BaselineLine(
        feature, "openai", model, plan, calls, inp, out, cost_nanos=int(cost * NANOS_PER_DOLLAR)
    )


def baseline(daily: tuple[int, ...] = (5, 7, 6, 9, 3, 8, 4)) -> Baseline:
    lines = (
        line("chat", "gpt-4o", "pro", 700, 1_400_000, 280_000),
        line("summarize", "gpt-4o", None, 70, 700_000, 70_000),
    )
    total = sum(x.cost_nanos for x in lines)
    weights = sum(daily)
    days = tuple(total * d // weights for d in daily)
    return Baseline(lines, days, {"pro": Decimal("49")})


def month_of(nanos: int, days: int = 7) -> Decimal:
    return from_nanos(_nanos(Fraction(nanos, NANOS_PER_DOLLAR) * AVERAGE_MONTH_DAYS / days))


def by_feature(month, feature: str) -> Decimal:
    return sum((v for (f, _, _), v in month.parts.items() if f == feature), Decimal(0))


def test_no_change_reproduces_the_baseline_exactly() -> None:
    base = baseline()
    result = simulate(base, Levers(), RATES, draws=0)
    assert len(result.months) == 12
    for month in result.months:
        assert month.cost == base.monthly_cost == month_of(sum(x.cost_nanos for x in base.lines))
        assert by_feature(month, "chat") == month_of(base.lines[0].cost_nanos)
        assert month.calls == round(Fraction(770) * AVERAGE_MONTH_DAYS / 7)


def test_a_ten_percent_price_rise_raises_that_models_cost_by_exactly_ten_percent() -> None:
    base = Baseline(
        (*baseline().lines, line("search", "half", None, 70, 700_000, 0)), baseline().daily_nanos
    )
    before = simulate(base, Levers(), RATES, draws=0).months[0]
    after = simulate(base, Levers(price_pct={"openai/gpt-4o": Decimal(10)}), RATES, draws=0).months[
        0
    ]
    for key, cost in before.parts.items():
        want = cost * Decimal("1.1") if key[1] == "openai/gpt-4o" else cost
        assert after.parts[key] == want
    assert by_feature(after, "search") == by_feature(before, "search") > 0


def test_moving_a_feature_to_a_model_at_half_the_rates_halves_its_cost() -> None:
    base = baseline()
    before = simulate(base, Levers(), RATES, draws=0).months[0]
    moved = simulate(base, Levers(moves=(Move("chat", "openai/half"),)), RATES, draws=0).months[0]
    assert by_feature(moved, "chat") * 2 == by_feature(before, "chat") > 0
    assert {k[1] for k in moved.parts if k[0] == "chat"} == {"openai/half"}
    assert by_feature(moved, "summarize") == by_feature(before, "summarize")


def test_a_move_with_token_ratios_is_priced_from_the_target_rates() -> None:
    base = baseline()
    levers = Levers(
        moves=(Move("chat", "openai/half", "openai/gpt-4o", Decimal(2), Decimal("0.5")),)
    )
    moved = simulate(base, levers, RATES, draws=0).months[0]
    # 2.8M input and 140k output tokens at $1.25 / $5 per 1M, a 7-day window
    want = Fraction(2_800_000 * 125, 100_000_000) + Fraction(140_000 * 5, 1_000_000)
    assert by_feature(moved, "chat") == month_of(int(want * NANOS_PER_DOLLAR))


def test_the_band_narrows_as_the_baseline_varies_less() -> None:
    wide = simulate(baseline((1, 20, 2, 18, 1, 25, 3)), Levers(), RATES, seed=1).months[0]
    narrow = simulate(baseline((10, 11, 10, 12, 10, 11, 10)), Levers(), RATES, seed=1).months[0]
    flat = simulate(baseline((10,) * 7), Levers(), RATES, seed=1).months[0]
    assert wide.cost == narrow.cost == flat.cost
    assert wide.high - wide.low > narrow.high - narrow.low > flat.high - flat.low == 0
    assert wide.low < wide.cost < wide.high
    again = simulate(baseline((1, 20, 2, 18, 1, 25, 3)), Levers(), RATES, seed=1).months[0]
    assert (again.low, again.high) == (wide.low, wide.high)  # seeded


def test_user_growth_compounds_each_month() -> None:
    base = baseline()
    flat = simulate(base, Levers(), RATES, draws=0).months[0].cost
    grown = simulate(base, Levers(user_growth_pct=Decimal(10), horizon_months=3), RATES, draws=0)
    exact = Fraction(sum(x.cost_nanos for x in base.lines)) * AVERAGE_MONTH_DAYS / 7
    assert [m.cost for m in grown.months] == [
        from_nanos(round(exact * Fraction(11, 10) ** m)) for m in (1, 2, 3)
    ]
    assert grown.months[0].cost > flat
    pro = [p for p in grown.plans if p.plan == "pro"]
    assert [p.revenue for p in pro] == [Decimal("53.9"), Decimal("59.29"), Decimal("65.219")]
    assert all(p.margin == p.revenue - p.ai_cost for p in pro)


def test_cache_hits_and_output_length_reprice_the_changed_tokens() -> None:
    base = baseline()
    before = simulate(base, Levers(), RATES, draws=0).months[0]
    longer = simulate(base, Levers(output_length_pct=Decimal(100)), RATES, draws=0).months[0]
    # doubling output adds the output's cost once: 280k x $10/1M = $2.80 a week for chat
    assert by_feature(longer, "chat") - by_feature(before, "chat") == month_of(2_800_000_000)
    cached = simulate(base, Levers(cache_hit_pct=Decimal(50)), RATES, draws=0).months[0]
    assert cached.cost == before.cost  # no cache rate: cache reads are billed as input
    rates = {**RATES, "openai/gpt-4o": {**RATES["openai/gpt-4o"], "cache_read_tokens": Fraction(0)}}
    free = simulate(base, Levers(cache_hit_pct=Decimal(50)), rates, draws=0).months[0]
    # half of chat's 1.4M input tokens free: $1.75 a week less
    assert by_feature(before, "chat") - by_feature(free, "chat") == month_of(1_750_000_000)


def test_horizon_bounds_and_bad_levers_are_refused_clearly() -> None:
    assert len(simulate(baseline(), Levers(horizon_months=1), RATES, draws=0).months) == 1
    for levers, message in (
        (Levers(horizon_months=0), "horizon_months: 0 is not a whole 1 to 12 months"),
        (Levers(horizon_months=13), "horizon_months: 13 is not a whole 1 to 12 months"),
        (Levers(user_growth_pct="fast"), "user_growth_pct: 'fast' is not a number"),
        (Levers(usage_per_user_pct=Decimal(-100)), "usage_per_user_pct: -100% is outside"),
        (Levers(cache_hit_pct=Decimal(120)), "cache_hit_pct: 120% is not a share from 0 to 100%"),
        (
            Levers(price_pct={"gpt-4o": Decimal(1)}),
            "price_pct: 'gpt-4o' is not a model as provider/model",
        ),
        (Levers(moves=(Move("chat", "openai/nope"),)), "moves: openai/nope has no price"),
        (
            Levers(moves=(Move("chat", "openai/half", input_ratio=Decimal(0)),)),
            "moves.input_ratio: 0 is outside",
        ),
    ):
        with pytest.raises(LeverError, match=None) as refused:
            simulate(baseline(), levers, RATES)
        assert str(refused.value).startswith(message), refused.value


def test_the_month_a_budget_breaks() -> None:
    base = baseline()
    month1 = simulate(base, Levers(), RATES, draws=0).months[0]
    chat = by_feature(month1, "chat")
    limits = [
        BudgetLimit("chat", chat * Decimal("1.15"), feature="chat"),
        BudgetLimit("all", month1.cost * 10),
    ]
    result = simulate(base, Levers(user_growth_pct=Decimal(10)), RATES, limits, draws=0)
    assert result.budgets[0].month == 2  # x1.1 fits, x1.21 does not
    assert result.budgets[0].cost == by_feature(result.months[1], "chat")
    assert result.budgets[1].month is None


def test_the_tornado_puts_the_lever_that_moves_the_total_most_first() -> None:
    rows = sensitivity(baseline(), Levers(), RATES)
    assert rows[0].swing >= rows[-1].swing
    usage = next(r for r in rows if r.lever == "Usage per user")
    total = simulate(baseline(), Levers(), RATES, draws=0).total
    assert abs(usage.high_total - total * Decimal("1.2")) <= Decimal("0.00000002")
    assert next(r for r in rows if r.lever == "Cache-hit rate").swing == 0  # no cache rate


def test_levers_round_trip_through_json() -> None:
    levers = Levers(
        horizon_months=6,
        price_pct={"openai/gpt-4o": Decimal("-12.5")},
        draft_prices={"openai/half": {"input_tokens": Decimal("1.1")}},
        moves=(Move("chat", "openai/half", None, Decimal("1.2"), Decimal("0.8")),),
        user_growth_pct=Decimal("3"),
        cache_hit_pct=Decimal("40"),
    )
    import json

    again = levers_from_params(json.loads(json.dumps(levers_to_params(levers))))
    base = baseline()
    assert simulate(base, again, RATES, draws=0) == simulate(base, levers, RATES, draws=0)
    with pytest.raises(LeverError, match="unknown lever"):
        levers_from_params({"speed": "1"})


# --- the store: scenarios saved and audited, the baseline read from the rollups ---------------


def audit_rows(engine):
    from sqlalchemy import select

    from tracking.schema import audit_log

    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.table_name == "scenarios").order_by(audit_log.c.id)
        )
        return [(r.who, r.action, r.key, r.before, r.after) for r in rows]


def test_a_scenario_round_trips_through_the_store_and_is_audited(engine) -> None:
    from dashboard.scenarios import delete_scenario, list_scenarios, load_scenario, save_scenario

    levers = Levers(
        horizon_months=6,
        price_pct={"openai/gpt-4o": Decimal("-12.5")},
        moves=(Move("chat", "openai/half", None, Decimal("1.2"), Decimal("0.8")),),
        cache_hit_pct=Decimal("40"),
    )
    with engine.begin() as conn:
        save_scenario(conn, "cheaper chat", levers, "ann@example.com")
    with engine.connect() as conn:
        saved = load_scenario(conn, "cheaper chat")
    assert saved is not None and saved.created_by == "ann@example.com"
    assert saved.levers == levers
    assert simulate(baseline(), saved.levers, RATES, draws=0) == simulate(
        baseline(), levers, RATES, draws=0
    )
    grown = Levers(user_growth_pct=Decimal(5))
    with engine.begin() as conn:
        save_scenario(conn, "cheaper chat", grown, "bob@example.com")
        with pytest.raises(LeverError, match="horizon_months"):
            save_scenario(conn, "bad", Levers(horizon_months=40), "bob@example.com")
        with pytest.raises(LeverError, match="name: a scenario needs a name"):
            save_scenario(conn, " ", grown, "bob@example.com")
    with engine.begin() as conn:
        assert [s.name for s in list_scenarios(conn)] == ["cheaper chat"]
        assert list_scenarios(conn)[0].levers == validate(grown)
        delete_scenario(conn, "cheaper chat", "bob@example.com")
        with pytest.raises(LeverError, match="no scenario named 'gone'"):
            delete_scenario(conn, "gone", "bob@example.com")
    with engine.connect() as conn:
        assert list_scenarios(conn) == []
    (add, edit, remove) = audit_rows(engine)
    assert add == ("ann@example.com", "add", "cheaper chat", None, levers_to_params(levers))
    assert edit[:3] == ("bob@example.com", "edit", "cheaper chat") and edit[3] == add[4]
    assert edit[4]["user_growth_pct"] == "5"
    assert remove[:3] == ("bob@example.com", "remove", "cheaper chat") and remove[4] is None


def validate(levers: Levers) -> Levers:
    from dashboard.economics.whatif import validate_levers

    return validate_levers(levers, None)


def test_the_baseline_is_the_rollups_by_feature_model_and_plan(engine) -> None:
    from datetime import date

    from sqlalchemy import func, insert, select

    from dashboard.whatif_data import load_baseline
    from tracking.schema import ROLLUP_TABLES, customer_users, customers, daily_rollups, plans

    day = date(2026, 3, 10)
    with engine.begin() as conn:
        conn.execute(insert(plans).values(name="pro", price=Decimal("49"), period="month"))
        conn.execute(
            insert(customers).values(
                customer_id="c1", start=date(2026, 1, 1), name="C1", plan="pro", seats=2
            )
        )
        conn.execute(insert(customer_users).values(user_id="u1", customer_id="c1"))
        rows = [
            ("u1", "chat", "gpt-4o", 0, "1.000000001"),
            ("u2", "chat", "gpt-4o", 1, "2.5"),
            ("u1", "chat", "gpt-4o", 3, "0.25"),
            ("u1", "search", "other", 2, "0"),
            ("u1", "chat", "gpt-4o", 9, "100"),  # before the window
        ]
        for user, feature, model, back, cost in rows:
            values = dict(
                day=day.replace(day=10 - back), user_id=user, feature=feature,
                provider="openai", model=model, calls=3, input_tokens=100, output_tokens=10,
                cost_usd=Decimal(cost), unpriced_calls=1 if model == "other" else 0,
            )  # fmt: skip
            for table in ROLLUP_TABLES:  # as the writer does: each rollup sums the same calls
                conn.execute(
                    insert(table).values({k: v for k, v in values.items() if k in table.c})
                )
    with engine.connect() as conn:
        base = load_baseline(conn, day, 7)
        r = daily_rollups.c
        total = conn.execute(select(func.sum(r.cost_usd)).where(r.day >= date(2026, 3, 4))).scalar()
    assert base.days == 7 and sum(base.daily_nanos) == sum(x.cost_nanos for x in base.lines)
    assert base.cost == Decimal(total) == Decimal("3.750000001")
    assert base.daily_nanos[-1] == 1_000_000_001 and base.daily_nanos[0] == 0
    lines = {(x.feature, x.model, x.plan): x for x in base.lines}
    assert lines[("chat", "gpt-4o", "pro")].cost_nanos == 1_250_000_001
    assert lines[("chat", "gpt-4o", "pro")].calls == 6
    assert lines[("chat", "gpt-4o", None)].cost_nanos == 2_500_000_000
    assert lines[("search", "other", "pro")].unpriced_calls == 1
    assert base.plan_revenue == {"pro": Decimal("98")}


# --- the What-if tab, from the entry script, on both stores ---------------------------------


def expected_inputs(engine):
    from datetime import UTC, datetime, timedelta

    from dashboard.economics.whatif import rates_from_book
    from dashboard.whatif_data import load_baseline, priced_models
    from tracking.pricing import load_price_book

    end = datetime.now(UTC).date() - timedelta(days=1)
    with engine.connect() as conn:
        base = load_baseline(conn, end, 28)
        return base, rates_from_book(load_price_book(conn), priced_models(conn), datetime.now(UTC))


def expected_projection(engine, levers: Levers):
    from datetime import UTC, datetime, timedelta

    from dashboard.economics.whatif import rates_from_book
    from dashboard.whatif_data import budget_limits, load_baseline, priced_models
    from tracking.pricing import load_price_book

    end = datetime.now(UTC).date() - timedelta(days=1)
    with engine.connect() as conn:
        base = load_baseline(conn, end, 28)
        rates = rates_from_book(load_price_book(conn), priced_models(conn), datetime.now(UTC))
        limits, _ = budget_limits(conn)
    return base, simulate(base, levers, rates, limits, draws=0)


def test_the_whatif_tab_shows_the_simulators_figures(demo_app_store) -> None:
    from streamlit.testing.v1 import AppTest

    from dashboard.formats import usd
    from dashboard.scenarios import list_scenarios
    from tests.test_pages import ENTRY
    from tests.test_pricing_page import PASSWORD, PASSWORD_SECRETS, enter_password, who
    from tracking.budget_store import Budget, add_budget

    with demo_app_store.begin() as conn:  # a tenth of a month's baseline: broken in month 1
        add_budget(conn, Budget("all", Decimal("0.01"), period="day"), "test")
    shared = demo_app_store.dialect.name != "sqlite"
    at = AppTest.from_file(ENTRY, default_timeout=90)
    if shared:
        for name, value in PASSWORD_SECRETS.items():
            at.secrets[name] = value
    at.run()
    at.switch_page("../pages/budgets.py").run()
    assert not at.exception, at.exception
    assert not [b for b in at.button if b.key == "whatif.save"] or not shared  # read-only first
    if shared:
        enter_password(at, PASSWORD)
    shown = {m.label: m.value for m in at.metric}
    base, want = expected_projection(demo_app_store, Levers())
    assert base.cost > 0
    assert shown["Baseline per month"] == usd(base.monthly_cost) == shown["Month 1 projected"]
    assert shown["Total over 12 months"] == usd(want.total)
    (broken,) = want.budgets
    budgets = next(d.value for d in at.dataframe if "breaks_in_month" in d.value.columns)
    assert budgets.to_dict("records") == [
        {
            "budget": "all",
            "monthly_limit": "0.304375000",
            "breaks_in_month": str(broken.month),
            "projected_spend": str(broken.cost),
        }
    ]
    assert broken.month == 1 and broken.cost == want.months[0].cost

    at.text_input(key="whatif.growth").input("5").run()
    at.slider(key="whatif.horizon").set_value(6).run()
    move = {"feature": base.lines[0].feature, "to_model": "openai/gpt-4o", "output_ratio": "0.5"}
    edit(at, "moves", [move])
    levers = Levers(
        horizon_months=6,
        user_growth_pct=Decimal(5),
        moves=(Move(base.lines[0].feature, "openai/gpt-4o", None, Decimal(1), Decimal("0.5")),),
    )
    _, want = expected_projection(demo_app_store, levers)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Month 1 projected"] == usd(want.months[0].cost)
    assert shown["Total over 6 months"] == usd(want.total)
    table = next(d.value for d in at.dataframe if "cost_usd" in d.value.columns)
    assert list(table["cost_usd"]) == [str(m.cost) for m in want.months]
    tornado = next(d.value for d in at.dataframe if "swing_usd" in d.value.columns)
    _, rates = expected_inputs(demo_app_store)
    rows = sensitivity(base, levers, rates)
    assert list(tornado["lever"]) == [r.lever for r in rows]
    assert list(tornado["swing_usd"]) == [str(r.swing) for r in rows]

    at.text_input(key="whatif.save_name").input("growth").run()
    at.button(key="whatif.save").click().run()
    with demo_app_store.connect() as conn:
        (saved,) = list_scenarios(conn)
    assert saved.name == "growth" and saved.levers == validate(levers)
    assert saved.created_by == who(demo_app_store)
    assert audit_rows(demo_app_store)[-1][:3] == (who(demo_app_store), "add", "growth")
    at.multiselect(key="whatif.compare").select("growth").run()
    compared = next(d.value for d in at.dataframe if "growth" in d.value.columns)
    assert list(compared["growth"]) == [*(str(m.cost) for m in want.months), str(want.total)]

    at.text_input(key="whatif.growth").input("lots").run()
    assert "user_growth_pct: 'lots' is not a number" in [md_plain(e.value) for e in at.error]


def test_a_draft_price_table_reprices_that_models_tokens() -> None:
    base = baseline()
    before = simulate(base, Levers(), RATES, draws=0).months[0]
    # gpt-4o's output drafted from $10 to $20 per 1M: chat's 280k output tokens cost $2.80 more
    drafted = Levers(draft_prices={"openai/gpt-4o": {"output_tokens": Decimal(20)}})
    after = simulate(base, drafted, RATES, draws=0).months[0]
    assert by_feature(after, "chat") - by_feature(before, "chat") == month_of(2_800_000_000)
    with pytest.raises(LeverError, match="'images' is not one of"):
        simulate(base, Levers(draft_prices={"openai/gpt-4o": {"images": 1}}), RATES)


# --- the lever tables: several price changes, moves and draft prices at once ----------------

TABLES = ("prices", "drafts", "moves")


def edit(at, table: str, added_rows: list[dict]) -> None:
    """Rows added to one of the What-if tab's lever tables, as the browser's editor sends them."""
    at.session_state[f"whatif.{table}.0"] = {
        "edited_rows": {},
        "added_rows": added_rows,
        "deleted_rows": [],
    }
    at.run()
    assert not at.exception, at.exception


def whatif_page(engine):
    """The Budgets & what-if page from the entry script, on PostgreSQL signed in as an editor."""
    from tests.test_budgets_page import page

    return page(engine)


def mixed_levers(base: Baseline) -> tuple[dict[str, list[dict]], Levers]:
    """Two price changes, two moves and a draft price for a model the store does not price,
    as the tables' rows and as the Levers they mean."""
    models = sorted({x.model_key for x in base.lines} - {"openai/gpt-4o"})
    drafted = models[0]  # unpriced in the demo store: the draft prices it, and it can be a target
    on_gpt4o = sorted({x.feature for x in base.lines if x.model_key == "openai/gpt-4o"})
    elsewhere = sorted(
        {x.feature for x in base.lines if x.model_key not in ("openai/gpt-4o", drafted)}
    )
    assert on_gpt4o and elsewhere
    rows = {
        "prices": [
            {"model": "openai/gpt-4o", "change_pct": "10"},
            {"model": drafted, "change_pct": "-20"},
        ],
        "drafts": [
            {"model": drafted, "unit": "input_tokens", "usd_per_1m": "1.5"},
            {"model": drafted, "unit": "output_tokens", "usd_per_1m": "6"},
        ],
        "moves": [
            {
                "feature": elsewhere[0],
                "to_model": "openai/gpt-4o",
                "input_ratio": "1.2",
                "output_ratio": "0.8",
            },
            {"feature": on_gpt4o[0], "from_model": "openai/gpt-4o", "to_model": drafted},
        ],
    }
    levers = Levers(
        price_pct={"openai/gpt-4o": Decimal(10), drafted: Decimal(-20)},
        draft_prices={drafted: {"input_tokens": Decimal("1.5"), "output_tokens": Decimal(6)}},
        moves=(
            Move(elsewhere[0], "openai/gpt-4o", None, Decimal("1.2"), Decimal("0.8")),
            Move(on_gpt4o[0], drafted, "openai/gpt-4o"),
        ),
    )
    return rows, levers


def assert_shows(at, want) -> None:
    """The page's figures are the projection's, to the nano-dollar."""
    from dashboard.formats import usd

    shown = {m.label: m.value for m in at.metric}
    assert shown["Month 1 projected"] == usd(want.months[0].cost)
    assert shown[f"Total over {len(want.months)} months"] == usd(want.total)
    table = next(d.value for d in at.dataframe if "cost_usd" in d.value.columns)
    assert list(table["cost_usd"]) == [str(m.cost) for m in want.months]


def test_several_price_changes_moves_and_draft_prices_at_once(demo_app_store) -> None:
    at = whatif_page(demo_app_store)
    base, plain = expected_projection(demo_app_store, Levers())
    rows, levers = mixed_levers(base)
    for table in TABLES:
        edit(at, table, rows[table])
    assert not at.error, [e.value for e in at.error]
    _, want = expected_projection(demo_app_store, levers)
    assert want.total != plain.total
    assert_shows(at, want)
    # each lever counts: without the drafted model's price cut the figures differ
    _, uncut = expected_projection(
        demo_app_store, replace(levers, price_pct={"openai/gpt-4o": Decimal(10)})
    )
    assert uncut.total != want.total
    tornado = next(d.value for d in at.dataframe if "swing_usd" in d.value.columns)
    _, rates = expected_inputs(demo_app_store)
    assert list(tornado["swing_usd"]) == [str(r.swing) for r in sensitivity(base, levers, rates)]


def test_a_draft_price_on_the_page_reprices_as_the_function_does(demo_app_store) -> None:
    at = whatif_page(demo_app_store)
    _, before = expected_projection(demo_app_store, Levers())
    edit(at, "drafts", [{"model": "openai/gpt-4o", "unit": "output_tokens", "usd_per_1m": "20"}])
    drafted = Levers(draft_prices={"openai/gpt-4o": {"output_tokens": Decimal(20)}})
    _, want = expected_projection(demo_app_store, drafted)
    assert want.total > before.total
    assert_shows(at, want)


def test_a_bad_cell_is_named_by_row_and_column_and_nothing_is_simulated(demo_app_store) -> None:
    at = whatif_page(demo_app_store)
    base, _ = expected_projection(demo_app_store, Levers())
    unpriced = sorted({x.model_key for x in base.lines} - {"openai/gpt-4o"})[0]
    edit(at, "prices", [{"model": "openai/gpt-4o", "change_pct": "5"}, {"change_pct": "lots"}])
    edit(at, "moves", [{"feature": base.lines[0].feature, "to_model": unpriced}])
    edit(at, "drafts", [{"model": "openai/gpt-4o", "unit": "images", "usd_per_1m": "-1"}])
    (error,) = [md_plain(e.value) for e in at.error]
    assert error.startswith("Nothing is simulated. Fix these cells first:")
    for problem in (
        "Price changes, row 2, Model: '' is not a model as provider/model",
        "Price changes, row 2, Change %: 'lots' is not a number",
        f"Feature moves, row 1, To model: {unpriced} has no price",
        "Draft prices, row 1, Unit: 'images' is not one of",
        "Draft prices, row 1, $ per 1M tokens: -1 must not be negative",
    ):
        assert problem in error
    assert "Price changes, row 1" not in error
    assert not at.metric and not any(d.value.columns.isin(["cost_usd"]).any() for d in at.dataframe)
    assert not [b for b in at.button if b.key == "whatif.save"]  # nothing to save either


def test_a_lone_surrogate_in_a_lever_cell_is_named_not_dropped(demo_app_store) -> None:
    # Streamlit's editor leaves such a row out of the table it returns: the page reads the
    # editor's own state, names the row, and simulates nothing (a row silently missing would
    # project a spend without the lever the user sees in the table)
    at = whatif_page(demo_app_store)
    edit(at, "prices", [{"model": "openai/gpt-4o", "change_pct": "5"}, {"change_pct": "1\ud800"}])
    (error,) = [md_plain(e.value) for e in at.error]
    assert error.startswith("Nothing is simulated. Fix these cells first:")
    assert "Price changes, row 2, Change %: contains a lone surrogate" in error
    assert "row 1" not in error
    assert not at.metric


def test_a_scenario_with_several_levers_saves_and_loads_back_whole(demo_app_store) -> None:
    from dashboard.scenarios import list_scenarios
    from dashboard.whatif_tables import table_rows

    at = whatif_page(demo_app_store)
    base, _ = expected_projection(demo_app_store, Levers())
    rows, levers = mixed_levers(base)
    levers = replace(levers, horizon_months=4, user_growth_pct=Decimal(3))
    at.slider(key="whatif.horizon").set_value(4).run()
    at.text_input(key="whatif.growth").input("3").run()
    for table in TABLES:
        edit(at, table, rows[table])
    at.text_input(key="whatif.save_name").input("mix").run()
    at.button(key="whatif.save").click().run()
    with demo_app_store.connect() as conn:
        (saved,) = list_scenarios(conn)
    assert saved.name == "mix" and saved.levers == validate(levers)

    fresh = whatif_page(demo_app_store)  # a new session: every lever at its default
    _, plain = expected_projection(demo_app_store, Levers())
    assert_shows(fresh, plain)
    fresh.selectbox(key="whatif.load_name").set_value("mix").run()
    fresh.button(key="whatif.load").click().run()
    assert not fresh.exception and not fresh.error, [e.value for e in fresh.error]
    assert fresh.slider(key="whatif.horizon").value == 4
    assert fresh.text_input(key="whatif.growth").value == "3"
    assert fresh.session_state["whatif.rows"] == table_rows(saved.levers)
    _, want = expected_projection(demo_app_store, levers)
    assert_shows(fresh, want)
    fresh.text_input(key="whatif.save_name").input("mix again").run()
    fresh.button(key="whatif.save").click().run()
    with demo_app_store.connect() as conn:
        again = {s.name: s.levers for s in list_scenarios(conn)}
    assert again["mix again"] == again["mix"]  # the loaded tables carry every lever


def test_the_tables_read_into_levers_and_back() -> None:
    from dashboard.whatif_tables import read_tables, table_rows

    levers = Levers(
        price_pct={"openai/gpt-4o": Decimal("12.5"), "openai/half": Decimal(-3)},
        draft_prices={"openai/new": {"input_tokens": Decimal("0.4"), "output_tokens": Decimal(2)}},
        moves=(
            Move("chat", "openai/new", "openai/gpt-4o", Decimal("1.5"), Decimal(1)),
            Move("summarize", "openai/half"),
        ),
    )
    rows = table_rows(levers)
    blank = {"model": None, "change_pct": float("nan")}  # an empty new row is no lever
    read = read_tables([*rows["prices"], blank], rows["moves"], rows["drafts"], RATES)
    assert not read.problems
    assert (read.price_pct, read.draft_prices, read.moves) == (
        levers.price_pct,
        levers.draft_prices,
        levers.moves,
    )
    assert rows["moves"][1]["from_model"] == "" and rows["moves"][1]["input_ratio"] == "1"


def test_rows_that_repeat_a_lever_are_refused_by_row() -> None:
    from dashboard.whatif_tables import read_tables

    price = {"model": "openai/gpt-4o", "change_pct": "5"}
    draft = {"model": "openai/gpt-4o", "unit": "input_tokens", "usd_per_1m": "3"}
    move = {"feature": "chat", "to_model": "openai/half"}
    read = read_tables([price, price], [move, move], [draft, draft], RATES)
    assert [str(p) for p in read.problems] == [
        "Draft prices, row 2: openai/gpt-4o input_tokens is drafted twice",
        "Price changes, row 2: openai/gpt-4o has two price changes",
        "Feature moves, row 2: chat is moved twice from the same model",
    ]
    assert (read.price_pct, read.draft_prices, read.moves) == ({}, {}, ())

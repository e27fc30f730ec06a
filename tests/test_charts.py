"""The charts: one colour per provider whatever the filters leave, unknown costs undrawn and
said in words, captions for what a chart leaves out."""

from __future__ import annotations

from datetime import date

import pandas as pd

from dashboard import breakdown, charts
from dashboard.queries import FRAME_COLUMNS

D1 = date(2026, 11, 1)


def day_frame(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(
        [(D1, p, m, "chat", n, 0, unpriced, 1, 1, nanos) for p, m, n, unpriced, nanos in rows],
        columns=list(FRAME_COLUMNS),
    )


def colours(chart: object) -> dict[str, str]:
    scale = chart.to_dict()["encoding"]["color"]["scale"]  # type: ignore[attr-defined]
    return dict(zip(scale["domain"], scale["range"], strict=True))


def test_a_provider_keeps_its_colour_whatever_else_is_shown() -> None:
    both = day_frame(("openai", "gpt-4o", 2, 0, 10), ("anthropic", "claude", 2, 0, 20))
    alone = day_frame(("openai", "gpt-4o", 2, 0, 10), ("zeta-ai", "z1", 1, 0, 5))
    first = colours(charts.daily_cost_stacked(breakdown.daily_by(both)))
    second = colours(charts.daily_cost_stacked(breakdown.daily_by(alone)))
    assert first["openai"] == second["openai"] == charts.provider_colour("openai")
    assert second["zeta-ai"] == charts.provider_colour("zeta-ai")  # hashed, but stable


def test_an_unpriced_day_has_no_bar_and_its_tooltip_says_unpriced() -> None:
    frame = day_frame(("openai", "gpt-4o", 2, 1, 4_200_000), ("acme", "house", 3, 3, 0))
    spec = charts.daily_cost_stacked(breakdown.daily_by(frame)).to_dict()
    rows = {r["provider"]: r for r in spec["datasets"][next(iter(spec["datasets"]))]}
    assert rows["acme"]["cost_usd"] is None and rows["acme"]["cost_label"] == "unpriced"
    assert rows["openai"]["cost_label"] == "$0.0042 + 1 unpriced"


def test_bar_charts_leave_unknown_costs_out_and_say_so() -> None:
    table = breakdown.group_table(
        day_frame(("openai", "gpt-4o", 2, 0, 10), ("acme", "house", 3, 3, 0)), "model"
    )
    shown = charts.cost_bars(table, "model").to_dict()
    data = shown["datasets"][next(iter(shown["datasets"]))]
    assert [r["model"] for r in data] == ["gpt-4o"]
    assert charts.bars_caption(table, "model") == "Chart: 1 model of unknown cost not drawn."


def test_the_margin_histogram_counts_every_customer_in_at_most_its_bins() -> None:
    margins = pd.Series([-5.0, -0.5, 0.0, 0.0, 3.25, 12.0, 12.0, 99.5] * 2500)
    spec = charts.margin_histogram(margins, bins=40).to_dict()
    rows = spec["datasets"][next(iter(spec["datasets"]))]
    assert len(rows) <= 40  # the chart carries bins, not 20,000 customers
    assert sum(r["customers"] for r in rows) == len(margins)
    lowest = min(rows, key=lambda r: r["low"])
    assert lowest["low"] == -5.0 and lowest["customers"] == 2500
    assert max(r["high"] for r in rows) == 99.5


def test_the_margin_histogram_of_one_margin_or_none_is_drawn() -> None:
    one = charts.margin_histogram(pd.Series([7.0])).to_dict()
    assert [r["customers"] for r in one["datasets"][next(iter(one["datasets"]))]] == [1]
    charts.margin_histogram(pd.Series([], dtype=float)).to_dict()

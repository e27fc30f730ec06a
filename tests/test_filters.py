"""The sidebar's helpers: typed ids and tags, and the days one page read covers."""

from __future__ import annotations

from datetime import date

from dashboard.filters import frame_window, parse_tags, split_ids
from dashboard.queries import Filters


def test_split_ids_trims_and_drops_duplicates() -> None:
    assert split_ids(" u_1, u_2,,u_1 ") == ("u_1", "u_2")
    assert split_ids("") == ()


def test_parse_tags_keeps_well_formed_pairs() -> None:
    assert parse_tags("plan=pro, team = growth, junk, =x, y=") == (
        ("plan", "pro"),
        ("team", "growth"),
    )


def test_frame_window_covers_the_range_this_month_and_the_projection_days() -> None:
    today = date(2026, 11, 25)
    assert frame_window(Filters(date(2026, 11, 20), date(2026, 11, 22)), today) == (
        date(2026, 11, 1),
        today,
    )
    assert frame_window(Filters(date(2026, 9, 1), date(2026, 9, 30)), today) == (
        date(2026, 9, 1),
        today,
    )
    early = date(2026, 11, 3)  # early in a month the projection looks back into the last one
    assert frame_window(Filters(early, early), early)[0] == date(2026, 10, 19)

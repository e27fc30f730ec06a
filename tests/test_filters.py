"""The sidebar's helpers: typed ids and tags, what is ignored and why, the days one page read
covers, and the choices offered."""

from __future__ import annotations

from datetime import date

import pandas as pd

from dashboard.filter_model import Filters, frame_window
from dashboard.filter_text import parse_ids, parse_tags
from dashboard.filters import options, read_dates


def test_ids_are_trimmed_unquoted_and_counted_once() -> None:
    assert parse_ids(" u_1, u_2,,u_1 ").values == ("u_1", "u_2")
    assert parse_ids("'u_1', \"u_2\",").values == ("u_1", "u_2")  # quotes, a trailing comma
    assert parse_ids("u_1\nu_2").values == ("u_1", "u_2")
    assert parse_ids("").values == ()


def test_an_id_with_a_space_is_used_as_typed_and_said_so() -> None:
    parsed = parse_ids("u_1 u_2, u_3")
    assert parsed.values == ("u_1 u_2", "u_3")
    assert parsed.notes and "separate ids with commas" in parsed.notes[0]


def test_well_formed_tags_are_kept_and_every_other_part_is_named_with_why() -> None:
    parsed = parse_tags('plan=pro, team = growth, "env"="prod", junk, =x, y=, a==b, plan:pro,')
    assert parsed.values == (("plan", "pro"), ("team", "growth"), ("env", "prod"))
    reasons = dict(parsed.ignored)
    assert set(reasons) == {"junk", "=x", "y=", "a==b", "plan:pro"}
    assert "key=value" in reasons["junk"] and "key=value" in reasons["plan:pro"]
    assert "no key" in reasons["=x"] and "no value" in reasons["y="]
    assert "more than one" in reasons["a==b"]
    message = parsed.message("the tags")
    assert message and "`plan:pro`" in message and "`=x`" in message


def test_tags_that_are_all_well_formed_ignore_nothing() -> None:
    parsed = parse_tags("plan=pro, plan=team")
    assert parsed.values == (("plan", "pro"), ("plan", "team"))  # either value
    assert parsed.ignored == () and parsed.message("the tags") is None


def test_the_choices_offered_are_those_the_other_choices_leave() -> None:
    frame = pd.DataFrame(
        {
            "provider": ["openai", "openai", "anthropic", "google"],
            "model": ["gpt-4o", "whisper-1", "claude-sonnet-4", "gemini"],
            "feature": ["chat", "transcribe", "chat", "(none)"],
        }
    )
    assert options(frame, {})["model"] == ["claude-sonnet-4", "gemini", "gpt-4o", "whisper-1"]
    narrowed = options(frame, {"provider": ("openai",)})
    assert narrowed["model"] == ["gpt-4o", "whisper-1"]
    assert narrowed["provider"] == ["anthropic", "google", "openai"]  # not narrowed by itself
    by_feature = options(frame, {"feature": ("chat",)})
    assert by_feature["provider"] == ["anthropic", "openai"]
    assert by_feature["model"] == ["claude-sonnet-4", "gpt-4o"]


def test_a_half_picked_range_says_so() -> None:
    day = date(2026, 11, 20)
    assert read_dates((day, date(2026, 11, 1))) == (date(2026, 11, 1), day, "")
    start, end, why = read_dates((day,))
    assert (start, end) == (day, day) and "end date" in why


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

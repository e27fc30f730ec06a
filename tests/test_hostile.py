"""Hostile input (issue 20): one corpus (tests/hostile_corpus.py) through every way text gets in,
on both stores: ``record``'s ids and tags, the pages' filters and messages, the editors' cells
and the CSV imports.

Each value is stored exactly (read back equal) and shown as the text it is (never Markdown,
never HTML, never a formula), or refused with a message that says which row or field and why,
with nothing else changed in the store (a full dump of the tables before and after).
tests/test_properties.py generates record's input; this file adds what generation leaves to
chance: NUL, lone surrogates, RTL and zero-width characters and full-length names in each
field, and everything after record.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from markdown_it import MarkdownIt
from sqlalchemy import Engine, func, select

import tracking
from dashboard.md_escape import md_code, md_text, one_line
from tests.hostile_corpus import REFUSED, STORABLE, TEXTS, Hostile
from tracking.db import make_engine
from tracking.schema import calls, daily_rollups, metadata

AT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
FIGURES: dict[str, int] = {}  # what the run checked, for the README row (printed at the end)


def count(key: str, n: int = 1) -> None:
    FIGURES[key] = FIGURES.get(key, 0) + n


def dump(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order: "nothing else changed" compares two."""
    found: dict[str, list[tuple]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(select(table)).all()
            found[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return found


@pytest.fixture
def host(store_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """tracking as a host app runs it (bad input counted and logged, never raised)."""
    monkeypatch.delenv("UNITWISE_STRICT")
    tracking.configure(
        url=store_url, journal_path=str(tmp_path / "journal.jsonl"), flush_interval=0.05
    )
    yield store_url
    tracking.shutdown(timeout=5)


# ---------------------------------------------------------------------------- the escape helpers

MD = MarkdownIt("commonmark")


def rendered_text(markdown: str) -> str:
    """What CommonMark shows for ``markdown``: one paragraph's text, or the HTML if it is not."""
    out = MD.render(markdown).strip()
    match = re.fullmatch(r"<p>(.*)</p>", out, re.S)
    assert match, out  # a heading, a list, a code block... is not text
    body = match.group(1)
    assert "<" not in body.replace("<code>", "").replace("</code>", ""), out  # no element
    return html.unescape(body.replace("<code>", "").replace("</code>", ""))


@pytest.mark.parametrize("h", [h for h in TEXTS if h.storable], ids=lambda h: h.name)
def test_md_text_and_md_code_show_the_text_as_it_is(h: Hostile) -> None:
    shown = one_line(h.value)
    if shown.strip(" \t") != shown or not shown.strip():
        pytest.skip("CommonMark trims a paragraph's outer spaces")
    assert rendered_text(md_text(h.value)) == shown
    assert rendered_text(f"x {md_code(h.value)} y") == f"x {shown} y"
    # Streamlit's own syntax: no unescaped $, :word[ or :word: is left
    escaped = md_text(h.value)
    assert not re.search(r"(?<!\\)\$|(?<!\\):\w+(?<!\\)\[|(?<!\\):[\w/]+(?<!\\):", escaped)


# ---------------------------------------------------------------------------- record


PLACES = ("user_id", "feature", "model", "tag_key", "tag_value")


def fields_for(place: str, value: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"provider": "hostile", "model": "m", "input_tokens": 1}
    if place.startswith("tag_"):
        fields["tags"] = {value: "v"} if place == "tag_key" else {"k": value}
    else:
        fields[place] = value
    return fields


@pytest.mark.parametrize("place", PLACES)
def test_record_stores_each_value_exactly_or_refuses_it_changing_nothing(
    host: str, place: str
) -> None:
    engine = make_engine(host)
    try:
        for h in TEXTS:
            before, rejected = dump(engine), tracking.stats()["rejected"]
            call_id = uuid.uuid4()
            got = tracking.record(occurred_at=AT, call_id=call_id, **fields_for(place, h.value))
            assert tracking.flush(5)
            stats = tracking.stats()
            field = "tags" if place.startswith("tag_") else place
            count("record checks")
            # a name longer than its column is refused; a tag's key or value is JSON: no limit
            fits = len(h.value.strip()) <= 200 or field == "tags"
            if h.storable and fits:
                assert got == call_id, (h.name, stats["recent_rejections"][-1:])
                with engine.connect() as conn:
                    row = conn.execute(select(calls).where(calls.c.id == call_id)).one()
                if field == "tags":
                    assert row.tags == fields_for(place, h.value)["tags"], h.name
                else:  # names are trimmed of the whitespace around them, as documented
                    assert getattr(row, field) == (h.value.strip() or None), h.name
                count("record stored exactly")
            else:
                assert got is None, h.name
                assert stats["rejected"] == rejected + 1, h.name
                reason = stats["recent_rejections"][-1]
                assert reason["field"] == field, (h.name, reason)
                assert dump(engine) == before, h.name
                count("record refused")
    finally:
        engine.dispose()

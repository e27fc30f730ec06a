"""What a user types into the text filters (tags, user ids), read with a reason for every part
that was not used: a filter that silently drops a part shows unfiltered figures as if filtered.

Plain functions, no Streamlit and no SQL, so the pages only show what they return.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dashboard.md_escape import md_code

_SEPARATORS = re.compile(r"[,\n]")


@dataclass(frozen=True)
class Parsed:
    """The parts of a filter that are used, and each part that is not, with why."""

    values: tuple
    ignored: tuple[tuple[str, str], ...] = ()  # (the part as typed, why it was not used)
    notes: tuple[str, ...] = ()  # how a used part was read, where it may surprise

    def message(self, what: str) -> str | None:
        """One line for the page: which parts were ignored and why, or None."""
        if not self.ignored:
            return None
        parts = "; ".join(f"{md_code(part)}: {why}" for part, why in self.ignored)
        return f"Ignored in {what}: {parts}."


def _unquoted(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        return text[1:-1].strip()
    return text


def parse_tags(text: str) -> Parsed:
    """'plan=pro, team=growth' -> (('plan', 'pro'), ('team', 'growth')).

    A key given twice means either value (``plan=pro, plan=team``). Parts without a key, a
    value or an ``=``, or with a second ``=``, are not used, and ``ignored`` says why.
    """
    found: list[tuple[str, str]] = []
    ignored: list[tuple[str, str]] = []
    for raw in _SEPARATORS.split(text):
        part = raw.strip()
        if not part:
            continue  # a trailing or doubled comma
        key, sep, value = part.partition("=")
        key, value = _unquoted(key), _unquoted(value)
        if not sep:
            ignored.append((part, "no `=`; write key=value, such as plan=pro"))
        elif not key:
            ignored.append((part, "no key before `=`"))
        elif not value:
            ignored.append((part, "no value after `=`"))
        elif "=" in value:
            ignored.append((part, "more than one `=`; write one key=value per part"))
        elif (key, value) not in found:
            found.append((key, value))
    return Parsed(tuple(found), tuple(ignored))


def parse_ids(text: str) -> Parsed:
    """'u_1, u_2' -> ('u_1', 'u_2'): ids typed by hand (there can be far too many to list).

    Commas or new lines separate ids; spaces around an id and quotes around it are dropped; an
    id given twice counts once. An id with a space inside is used as typed, with a note (ids are
    separated by commas, not spaces).
    """
    ids: list[str] = []
    notes: list[str] = []
    for raw in _SEPARATORS.split(text):
        value = _unquoted(raw)
        if not value or value in ids:
            continue
        ids.append(value)
        if any(ch.isspace() for ch in value):
            notes.append(
                f"{md_code(value)} is read as one id with a space in it; separate ids with commas."
            )
    return Parsed(tuple(ids), (), tuple(notes))

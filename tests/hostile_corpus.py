"""One corpus of hostile values, shared by tests/test_hostile.py's checks of record, the pages,
the editors and the CSV imports.

Each value is either one both stores hold (it must be stored exactly and shown as the text it
is) or one they cannot (NUL: PostgreSQL's text refuses it; a lone surrogate: no UTF-8 encoder
writes it; longer than the column), which must be refused with a clear message, never half
stored and never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hostile:
    name: str
    value: str

    @property
    def storable(self) -> bool:
        """Both stores can hold it as text (length aside)."""
        if "\x00" in self.value:
            return False
        try:
            self.value.encode()
        except UnicodeEncodeError:
            return False
        return True

    @property
    def live_markdown(self) -> bool:
        """Streamlit's Markdown would not show it as it is (a special character in it)."""
        return any(ch in self.value for ch in "*_[]()<>`#$:&\\~|!\n")


TEXTS = (
    Hostile("script", "<script>alert(1)</script>"),
    Hostile("img", "<img src=x onerror=alert(1)>"),
    Hostile("entity", "&lt;b&gt;&amp;"),
    Hostile("bold", "**bold** _it_"),
    Hostile("link", "[click](javascript:alert(1))"),
    Hostile("colour", ":red[alarm]"),
    Hostile("icon", ":material/delete: :smile:"),
    Hostile("latex", "$x^2$"),
    Hostile("backticks", "`tick` ``x``"),
    Hostile("heading", "# heading"),
    Hostile("sql", "'; DROP TABLE calls; --"),
    Hostile("sql_or", "' OR '1'='1"),
    Hostile("placeholders", "%s %(x)s {0} :name ?"),
    Hostile("formula", '=HYPERLINK("http://evil.example","click")'),
    Hostile("formula_plus", "+1+1"),
    Hostile("formula_at", "@SUM(A1:A9)"),
    Hostile("negative", "-1"),
    Hostile("nan", "NaN"),
    Hostile("rtl_override", "\u202eevil\u202c"),
    Hostile("hebrew", "שלום עולם"),
    Hostile("zero_width", "a\u200bb\u200dc"),
    Hostile("bom", "\ufeffbom"),
    Hostile("combining", "e\u0301"),
    Hostile("emoji", "👩‍👩‍👧"),
    Hostile("last_plane", "\U0010fffd"),
    Hostile("bell", "bell\x07"),
    Hostile("ansi", "\x1b[31mred\x1b[0m"),
    Hostile("newline", "two\nlines"),
    Hostile("tab", "a\tb"),
    Hostile("backslash", "back\\slash\\"),
    Hostile("huge", "h" * 200),  # a name column's whole length
    Hostile("nul", "a\x00b"),
    Hostile("nul_only", "\x00"),
    Hostile("surrogate", "x\ud800"),
    Hostile("low_surrogate", "\udfff"),
    Hostile("too_long", "L" * 201),
)
STORABLE = tuple(h for h in TEXTS if h.storable and len(h.value) <= 200)
REFUSED = tuple(h for h in TEXTS if h not in STORABLE)

# what a number cell or a CSV amount may be given
NUMBERS = ("-1", "NaN", "nan", "Infinity", "-inf", "1e309", "9" * 40, "1e-30", "0x10", "1,5")

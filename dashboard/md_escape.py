"""User-supplied text (user ids, features, models, customer, plan and budget names, notes) put
into a Streamlit message as the text it is.

Streamlit shows HTML in ``st.markdown``/``st.caption``/``st.info``... as text (unsafe_allow_html
is False by default), but it does interpret Markdown (``**b**``, ``[x](javascript:...)``, ``#``
at a line's start), entities (``&lt;``), its own ``:red[x]``, ``:material/icon:`` and emoji
shortcodes, and LaTeX between ``$``. A user id like ``:red[x]`` must read ``:red[x]``, not a red
x. CommonMark lets a backslash escape any ASCII punctuation, so every one is escaped; a line
break becomes a space (a new line could start a heading or a list). Plain functions, no
Streamlit, so tests check them against a CommonMark parser.
"""

from __future__ import annotations

import re
import string

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
_TICKS = re.compile(r"`+")


def one_line(value: object) -> str:
    """The text of ``value`` with each line break a space."""
    return _LINE_BREAKS.sub(" ", str(value))


def md_text(value: object) -> str:
    """``value`` escaped for Markdown: shown as the characters it holds."""
    return _PUNCTUATION.sub(r"\\\1", one_line(value))


def md_code(value: object) -> str:
    """``value`` as an inline code span: a fence longer than any run of backticks inside, and
    spaces inside the fence when the text starts or ends with a backtick or a space (CommonMark
    strips one space from each side of a code span that has both)."""
    text = one_line(value)
    longest = max((len(m) for m in _TICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest or text[:1] in " `" or text[-1:] in " `" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_ESCAPED = re.compile(r"\\([" + re.escape(string.punctuation) + "])")


def md_plain(markdown: str) -> str:
    """The text a reader sees of a message made with ``md_text``: its backslash escapes
    undone (what tests compare a message with)."""
    return _ESCAPED.sub(r"\1", markdown)

"""The accounts of Users & margins: plans, customers (their subscription terms and user ids) and
revenue lines, edited in tables or imported from a CSV. Widgets only: the rules are
``account_edits`` and ``account_import``, the writes ``accounts.write_*`` (an audit row each,
naming ``access.who``). Every write checks the editor role again, and forgets the cached reads.

Everything the store or a CSV holds is shown as text (tables, never markdown): names, notes,
ids and column names are whatever someone typed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import cache
from dashboard.access import Access
from dashboard.account_edits import (
    COLUMNS,
    KINDS,
    TABLE_NAMES,
    EditRefused,
    Start,
    pending,
    preview_frame,
    problems_frame,
    save_edit,
    start,
    written_text,
)
from dashboard.account_import import (
    PRESETS,
    Preview,
    default_columns,
    field_help,
    header_of,
    import_csv,
    preview_import,
)
from dashboard.accounts import PERIODS, AccountError
from dashboard.db import engine
from dashboard.formats import plural
from dashboard.notices import READ_ONLY, not_an_editor

SAVED = "accounts.saved"  # {"plans" | "customers" | "revenue" | "import": message}, shown once
PREVIEW = "accounts.import.preview_result"  # (what was previewed, the Preview, its rows)
MAX_UPLOAD_MB = 20

TITLES = {"plans": "Plans", "customers": "Customers", "revenue": "Revenue lines"}
HOW = {
    "plans": (
        "One row per plan. Price: US dollars per seat and billing period, exact (49.00);"
        " included usage: the AI cost in dollars a customer's month includes. A plan is"
        " retired by the last day it is offered."
    ),
    "customers": (
        "One row per subscription term: a plan change ends one term (its end day) and starts"
        " the next. User ids: the user_id your calls carry, separated by ; and the same on"
        " each of a customer's terms (give them on one row: the others follow); to move one"
        " to another customer, take it off the one and list it under the other. A custom"
        " price is dollars a month for all seats and replaces the plan's price."
    ),
    "revenue": (
        "Usage-based or one-off revenue of a customer for the days it pays for, in US"
        " dollars. A blank id is made from the customer, the days and the note."
    ),
}
NOT_DELETED = (
    "Deleting a row here deletes nothing from the store: saving is refused while a row is"
    " deleted (discard the edits to get it back)."
)
IMPORT_LABELS = {
    "plans": "Plans",
    "customers": "Customers (subscription terms, user ids)",
    "revenue": "Revenue lines",
}
NOT_IMPORTED = "(not imported)"


def editor_key(kind: str) -> str:
    """The data editor's key (its edits live in session state under it); a discard moves it
    on, so that the table starts afresh."""
    generation = st.session_state.get(f"accounts.{kind}.generation", 0)
    return f"accounts.{kind}.editor" + (f".{generation}" if generation else "")


def _start_key(kind: str) -> str:
    return f"accounts.{kind}.start"


def accounts_section(url: str, access: Access) -> None:
    """Plans, customers and revenue lines in editable tables (read-only tables without the
    editor role), then a CSV import of any of them."""
    if not access.can_edit:
        st.caption(READ_ONLY)
    for kind in KINDS:
        st.subheader(TITLES[kind])
        _table(url, access, kind)
    st.subheader("Import a CSV")
    import_section(url, access)


# --- the tables ---------------------------------------------------------------------------------


def begin(url: str, kind: str) -> Start:
    """The rows a table's edit begins from: read afresh from the store (not from a cache) on
    each run without pending edits, and kept while there are, so that the edits stay on the
    rows they were made on whatever anyone saves meanwhile (a row saved by someone else since
    is a conflict when this edit is saved)."""
    begun: Start | None = st.session_state.get(_start_key(kind))
    if begun is None or not pending(st.session_state.get(editor_key(kind))):
        with engine(url).connect() as conn:
            begun = start(conn, kind)
        st.session_state[_start_key(kind)] = begun
    return begun


def _column_config(kind: str, begun: Start) -> dict[str, Any]:
    label = COLUMNS[kind]
    cc = st.column_config

    def text(column: str, help: str | None = None) -> Any:
        return cc.TextColumn(label[column], help=help)

    def day(column: str, help: str | None = None) -> Any:
        return cc.DateColumn(label[column], format="YYYY-MM-DD", help=help)

    if kind == "plans":
        return {
            "name": text("name", "The plan's name, as customers' terms name it"),
            "price": text("price", "US dollars per seat and billing period, e.g. 49.00"),
            "period": cc.SelectboxColumn(label["period"], options=list(PERIODS), default="month"),
            "included_usage": text("included_usage", "AI cost in dollars a month includes"),
            "active_from": day("active_from"),
            "active_to": day("active_to", "The last day the plan is offered (retired after)"),
        }
    if kind == "customers":
        plans = sorted(set(begun.plans) | {t.plan for t in begun.rows if t.plan})
        return {
            "customer_id": text("customer_id"),
            "start": day("start", "The term's first day"),
            "name": text("name", "Blank: the customer id"),
            "plan": cc.SelectboxColumn(label["plan"], options=plans),
            "end": day("end", "The term's last day; blank: still running"),
            "seats": cc.NumberColumn(
                label["seats"], min_value=1, step=1, format="%d", default=1, help="Blank: 1"
            ),
            "discount_pct": text("discount_pct", "0-100 off the plan's price"),
            "custom_price": text("custom_price", "Dollars a month replacing the plan's price"),
            "users": text("users", "User ids separated by ; (the same on each term)"),
        }
    return {
        "id": text("id", "Blank: made from the customer, the days and the note"),
        "customer_id": text("customer_id", "A customer with a term saved"),
        "start": day("start", "The first day it pays for"),
        "end": day("end", "The last day it pays for"),
        "amount": text("amount", "US dollars, e.g. 120.50"),
        "note": text("note"),
    }


def _table(url: str, access: Access, kind: str) -> None:
    show_saved(kind)
    begun = begin(url, kind)
    config = _column_config(kind, begun)
    if not access.can_edit:
        st.dataframe(begun.frame, hide_index=True, column_config=config, placeholder="")
        return
    st.caption(f"{HOW[kind]} {NOT_DELETED}")
    key = editor_key(kind)
    st.data_editor(
        begun.frame,
        key=key,
        num_rows="dynamic",
        hide_index=True,
        column_config=config,
        placeholder="",  # a blank cell: none (no end, no custom price)
    )
    note = st.text_input("Why (kept in the audit log)", key=f"accounts.{kind}.note")
    left, right = st.columns([1, 3])
    save = left.button(f"Save {TITLES[kind].lower()}", type="primary", key=f"accounts.{kind}.save")
    if pending(st.session_state.get(key)) and right.button(
        "Discard my edits", key=f"accounts.{kind}.discard"
    ):
        discard(kind)
        st.rerun()
    if save:
        save_table(url, access, kind, begun, note)


def discard(kind: str) -> None:
    """Forget a table's edits: it starts afresh from the store (under a new key, so that the
    browser's table is a new one too)."""
    st.session_state.pop(editor_key(kind), None)
    st.session_state.pop(_start_key(kind), None)
    generation = f"accounts.{kind}.generation"
    st.session_state[generation] = st.session_state.get(generation, 0) + 1


def save_table(url: str, access: Access, kind: str, begun: Start, note: str | None) -> None:
    """Save a table's edits: every bad cell named and nothing written while there is one, else
    the changed and added rows written (audited, who: the editor) and the page run again."""
    if not_an_editor(access):
        return
    state = st.session_state.get(editor_key(kind))
    if not pending(state):
        st.info("Nothing to save: no row was changed, added or deleted.")
        return
    try:
        with engine(url).begin() as conn:
            written = save_edit(conn, begun, state, access.who or "", (note or "").strip() or None)
    except EditRefused as refused:
        if refused.conflict:
            st.error(
                "Nothing was saved: someone else saved some of these rows since you began (below)."
                " Discard your edits to see theirs, then make yours again."
            )
        else:
            count = plural(len(refused.problems), "problem")
            st.error(f"Nothing was saved: fix the {count} below first.")
        st.dataframe(problems_frame(refused.problems), hide_index=True)
        return
    except AccountError as refused:  # the store's own checks, which the cells' did not make
        st.error("Nothing was saved: the store refused these rows.")
        st.dataframe(pd.DataFrame({"Problem": refused.problems}), hide_index=True)
        return
    cache.forget()
    if not any(w.added or w.changed for w in written.values()):
        st.info("Nothing to save: the rows are as the store holds them.")
        return
    st.session_state.pop(editor_key(kind), None)
    st.session_state.pop(_start_key(kind), None)
    st.session_state.pop(f"accounts.{kind}.note", None)
    st.session_state.setdefault(SAVED, {})[kind] = f"Saved {written_text(written)}."
    st.rerun()


def show_saved(part: str) -> None:
    message = st.session_state.get(SAVED, {}).pop(part, None)
    if message:
        st.success(message)


# --- the CSV import -----------------------------------------------------------------------------


def import_section(url: str, access: Access) -> None:
    """A CSV of plans, customers or revenue lines: its kind, a preset, which column is which
    field, then a preview (every bad row by line and reason, what would be added and changed)
    and, when no row is bad, the import."""
    show_saved("import")
    kind = st.radio(
        "The CSV holds",
        list(KINDS),
        format_func=IMPORT_LABELS.get,
        horizontal=True,
        key="accounts.import.kind",
    )
    presets: list[str | None] = [None, *(p.name for p in PRESETS.values() if p.kind == kind)]
    preset = st.selectbox(
        "Preset",
        presets,
        format_func=lambda p: (
            "None: columns named like the fields" if p is None else PRESETS[p].label
        ),
        key=f"accounts.import.preset.{kind}",
        disabled=len(presets) == 1,
    )
    if preset is not None:
        st.caption(PRESETS[preset].note)
    uploaded = st.file_uploader(
        "CSV file (UTF-8)",
        type=["csv", "tsv", "txt"],
        key="accounts.import.file",
        max_upload_size=MAX_UPLOAD_MB,
    )
    pasted = st.text_area(
        "Or paste the CSV (a file uploaded above is read instead)",
        key="accounts.import.paste",
        height=120,
    )
    text = pasted or ""
    if uploaded is not None:
        try:
            text = uploaded.getvalue().decode("utf-8")
        except UnicodeDecodeError:
            st.error("The file is not UTF-8 text: save it as CSV UTF-8 and upload it again.")
            return
    if not text.strip():
        st.caption(
            "The header row names the columns; the mapping below says which is which field."
            " The header is line 1."
        )
        return
    header = header_of(text)
    if not header:
        st.error("The CSV is empty: a header row is needed.")
        return
    mapping = column_mapping(kind, header, preset)
    previewed = (kind, preset, hashlib.sha256(text.encode()).hexdigest(), sorted(mapping.items()))
    if st.button("Preview", key="accounts.import.preview"):
        with engine(url).connect() as conn:
            preview = preview_import(conn, kind, text, mapping or None, preset)
            rows = preview_frame(conn, preview) if preview.ok else None
        st.session_state[PREVIEW] = (previewed, preview, rows)
    held = st.session_state.get(PREVIEW)
    if held is None:
        return
    if held[0] != previewed:
        st.caption("The CSV, its kind or the mapping changed since the preview: preview again.")
        return
    _, preview, rows = held
    show_preview(preview, rows)
    if not preview.ok:
        return
    if not access.can_edit:
        st.caption(READ_ONLY)
        return
    note = st.text_input("Why (kept in the audit log)", key="accounts.import.note")
    if st.button("Import", type="primary", key="accounts.import.run"):
        run_import(url, access, kind, text, mapping, preset, note)


def column_mapping(kind: str, header: list[str], preset: str | None) -> dict[str, str]:
    """One choice per field, prefilled with the column it is read from by default (the
    preset's, else the one named like it). Returns only the fields chosen otherwise (a preset
    that reads a field from several columns keeps doing so while its first is chosen); "" for a
    field not to import."""
    defaults = default_columns(kind, header, preset)
    columns = [c for c in dict.fromkeys(header) if c]
    # a new file or preset starts the choices afresh
    seed = hashlib.sha256("\x1f".join([kind, str(preset), *header]).encode()).hexdigest()[:12]
    st.caption("Which CSV column is which field (blank cells of a required field are bad rows).")
    chosen: dict[str, str] = {}
    grid = st.columns(3)
    for i, (name, required, meaning) in enumerate(field_help(kind)):
        default = defaults.get(name, ())
        options: list[str | None] = [None, *columns]
        index = options.index(default[0]) if default and default[0] in options else 0
        picked = grid[i % 3].selectbox(
            f"{name} (required)" if required else name,
            options,
            index=index,
            format_func=lambda c: NOT_IMPORTED if c is None else c,
            key=f"accounts.import.map.{seed}.{name}",
            help=meaning or None,
        )
        if picked != (default[0] if default else None):
            chosen[name] = picked or ""
    return chosen


def show_preview(preview: Preview, rows: pd.DataFrame | None) -> None:
    read = pd.DataFrame(
        {
            "Field": list(preview.columns),
            "Read from (the first not blank)": [", ".join(c) for c in preview.columns.values()],
        }
    )
    if not read.empty:
        st.dataframe(read, hide_index=True)
    if not preview.ok:
        parts = [plural(len(preview.bad), "bad row")]
        if preview.problems:
            parts.append(plural(len(preview.problems), "problem") + " with the file")
        st.error(
            f"Nothing can be imported yet: {' and '.join(parts)} (of {plural(preview.rows, 'row')}"
            " read). Fix them in the CSV or the mapping and preview again; nothing was written."
        )
        lines = [None] * len(preview.problems) + [b.line for b in preview.bad]
        reasons = [*preview.problems, *("; ".join(b.reasons) for b in preview.bad)]
        st.dataframe(
            pd.DataFrame({"Line": pd.array(lines, dtype="Int64"), "Reason": reasons}),
            hide_index=True,
        )
        return
    would = "; ".join(
        f"{TABLE_NAMES.get(table, table)}: {w.added} to add, {w.changed} to change"
        + (f", {w.unchanged} the same" if w.unchanged else "")
        for table, w in preview.would.items()
    )
    st.info(f"{plural(preview.rows, 'row')} read, none bad. Importing would write {would}.")
    if rows is not None:
        st.dataframe(rows, hide_index=True)


def run_import(
    url: str,
    access: Access,
    kind: str,
    text: str,
    mapping: dict[str, str],
    preset: str | None,
    note: str | None,
) -> None:
    """Import the CSV (checked again against the store as it is now: nothing is written while a
    row is bad), then the page runs again with what it added and changed."""
    if not_an_editor(access):
        return
    with engine(url).begin() as conn:
        result = import_csv(
            conn,
            kind,
            text,
            access.who or "",
            mapping or None,
            preset,
            (note or "").strip() or None,
        )
    cache.forget()
    if not result.written:
        st.error("Nothing was imported: the store changed since the preview.")
        show_preview(result.preview, None)
        return
    st.session_state.pop(PREVIEW, None)
    st.session_state.pop("accounts.import.note", None)
    unchanged = sum(w.unchanged for w in result.written.values())
    same = f" ({plural(unchanged, 'row')} already as stored)" if unchanged else ""
    st.session_state.setdefault(SAVED, {})["import"] = (
        f"Imported {written_text(result.written)}{same}."
    )
    st.rerun()

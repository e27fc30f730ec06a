"""Every way the app writes to the store, held to the editor role on a shared (PostgreSQL) store:
each write function of the app, called with a reader's access (as a crafted session state would
reach it, without signing in), shows the reason and writes nothing; called with an editor's, the
same arguments do write (so the refusal is the role's, not bad arguments). A second test finds,
by reading the code, every app function that calls a store writer, and fails when one is not in
the table: a new editing path cannot be added without being held to the role here."""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest

from tracking.schema import metadata

ROOT = Path(__file__).resolve().parent.parent
REASON = "This is a shared store (PostgreSQL): editing needs the editor role."
CSV = "name,price\nsilver,15\n"


def _price_save(url: str, access: Any) -> None:
    from dashboard.db import engine
    from dashboard.price_editor import _save
    from dashboard.price_edits import EditPlan, ModelChange, newest_version
    from tracking.price_store import RateRow

    change = ModelChange("acme", "m1", (), (RateRow("input_tokens", Decimal(1), 10**6),), NOW)
    with engine(url).connect() as conn:
        base = newest_version(conn)
    _save(url, access, EditPlan(changes=[change]), base, None)


def _add_price(url: str, access: Any) -> None:
    from dashboard.price_editor import _add_price

    _add_price(url, access, "anthropic/claude-x", "", {"input_tokens": "3"}, "", "", None)


def _verify(url: str, access: Any) -> None:
    from dashboard.pricing_view import verify

    verify(url, access, ["openai/gpt-4o"], None)


def _reprice(url: str, access: Any) -> None:
    from dashboard.reprice_panel import apply
    from tracking.reprice_preview import Selection

    apply(url, access, Selection(provider="openai", models=("gpt-4o",)), 1)


def _catalogue(url: str, access: Any) -> None:
    from dashboard.catalogue_panel import _diff, accept, diff_frame

    base, changes = _diff(url, NOW)
    accept(url, access, diff_frame(changes).head(1), base, None)


def _budgets(url: str, access: Any) -> None:
    from dashboard.budgets_view import save

    save(url, access, [], {"added_rows": [{"name": "new budget", "limit_usd": "5"}]})


ADDED = {
    "plans": {"name": "gold", "price": "5", "period": "month"},
    "customers": {"customer_id": "newco", "start": date(2026, 1, 1), "custom_price": "10"},
    "revenue": {"start": date(2026, 1, 1), "end": date(2026, 1, 31), "amount": "9"},
}


def _table(kind: str) -> Callable[[str, Any], None]:
    def save(url: str, access: Any) -> None:
        import streamlit as st

        from dashboard import account_edits
        from dashboard.accounts_view import editor_key, save_table
        from dashboard.db import engine

        with engine(url).connect() as conn:
            begun = account_edits.start(conn, kind)
            customer = account_edits.start(conn, "customers").rows[0].customer_id
        added = {"customer_id": customer} | ADDED[kind]  # revenue: of a demo customer
        state = {"edited_rows": {}, "added_rows": [added], "deleted_rows": []}
        st.session_state[editor_key(kind)] = state
        save_table(url, access, kind, begun, None)

    return save


def _import(url: str, access: Any) -> None:
    from dashboard.accounts_view import run_import

    run_import(url, access, "plans", CSV, {}, None, None)


def _save_scenario(url: str, access: Any) -> None:
    from dashboard.economics.whatif import Levers
    from dashboard.whatif_view import save_scenario

    save_scenario(url, access, "plan b", Levers())


def _delete_scenario(url: str, access: Any) -> None:
    from dashboard.whatif_view import delete_scenario

    delete_scenario(url, access, "kept")


NOW = datetime(2026, 1, 15, tzinfo=UTC)
# every write path of the app: its name, how to call it, and the app functions it exercises
PATHS: dict[str, tuple[Callable[[str, Any], None], tuple[str, ...]]] = {
    "prices: save the editor's table": (_price_save, ("dashboard.price_editor._save",)),
    "prices: add a price for an unpriced model": (
        _add_price,
        ("dashboard.price_editor._add_price",),
    ),
    "prices: mark verified": (_verify, ("dashboard.pricing_view.verify",)),
    "reprice: apply": (_reprice, ("dashboard.reprice_panel.apply",)),
    "catalogue: accept": (_catalogue, ("dashboard.catalogue_panel.accept",)),
    "budgets: save the table": (_budgets, ("dashboard.budgets_view.save",)),
    "plans: save the table": (_table("plans"), ("dashboard.accounts_view.save_table",)),
    "customers: save the table": (_table("customers"), ("dashboard.accounts_view.save_table",)),
    "revenue: save the table": (_table("revenue"), ("dashboard.accounts_view.save_table",)),
    "accounts: import a CSV": (_import, ("dashboard.accounts_view.run_import",)),
    "scenarios: save": (_save_scenario, ("dashboard.whatif_view.save_scenario",)),
    "scenarios: delete": (_delete_scenario, ("dashboard.whatif_view.delete_scenario",)),
}


def run_path(name: str, editor: bool) -> None:
    """The AppTest script: the write path ``name`` called once (a write's st.rerun runs the
    script again) with an editor's access or a reader's."""
    import streamlit as st

    from dashboard.access import Access
    from dashboard.db import store_url

    if st.session_state.get("ran"):
        return
    st.session_state["ran"] = True
    access = (
        Access(True, "editor@example.com", "", "login") if editor else Access(False, None, REASON)
    )
    PATHS[name][0](store_url(), access)


def _script(name: str, editor: bool) -> None:
    from tests.test_write_paths import run_path

    run_path(name, editor)


def counts(engine: Engine) -> dict[str, int]:
    """Rows of every table of the store: "nothing written" means none of them changed."""
    with engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
        }


@pytest.fixture
def shared_store(demo_app_store: Engine) -> Engine:
    """The demo store on PostgreSQL (SQLite, embedded, is editable by design), with a scenario
    for the delete path to delete."""
    from dashboard import scenarios
    from dashboard.economics.whatif import Levers

    with demo_app_store.begin() as conn:  # what the delete path deletes
        scenarios.save_scenario(conn, "kept", Levers(), "setup")
    return demo_app_store


SHARED = pytest.param("postgresql", marks=pytest.mark.postgres)


@pytest.mark.parametrize("store_url", [SHARED], indirect=True)
@pytest.mark.parametrize("name", list(PATHS))
def test_every_write_path_is_refused_without_the_editor_role(
    shared_store: Engine, name: str
) -> None:
    before = counts(shared_store)
    reader = AppTest.from_function(_script, args=(name, False), default_timeout=60).run()
    assert not reader.exception, reader.exception
    assert [e.value for e in reader.error] == [REASON]
    assert counts(shared_store) == before  # no table changed, the audit log included
    editor = AppTest.from_function(_script, args=(name, True), default_timeout=60).run()
    assert not editor.exception, editor.exception
    assert not [e.value for e in editor.error], [e.value for e in editor.error]
    after = counts(shared_store)
    assert after["audit_log"] > before["audit_log"], "the same call as an editor writes"


# --- the table is complete ------------------------------------------------------------------


def _module_trees(*folders: str) -> list[tuple[str, ast.Module, str]]:
    """(module name, parsed tree, source) of every Python file under ``folders``."""
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = path.read_text()
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found.append((module, ast.parse(source), source))
    return found


def store_writers() -> set[str]:
    """Every function of tracking/ and dashboard/ that writes in someone's name: it takes
    ``who``, the name the audit log keeps (the app's own write functions take an Access)."""
    writers = set()
    for module, tree, _ in _module_trees("tracking", "dashboard"):
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                if any(a.arg == "who" for a in arguments):
                    writers.add(f"{module}.{node.name}")
    return writers


def _names(tree: ast.Module, module: str) -> dict[str, str]:
    """What each name of a module refers to: imported functions and modules, its own defs."""
    names = {n.name: f"{module}.{n.name}" for n in tree.body if isinstance(n, ast.FunctionDef)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name] = a.name
    return names


def _called(call: ast.Call, names: dict[str, str]) -> str | None:
    f = call.func
    if isinstance(f, ast.Name):
        return names.get(f.id)
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in names:
        return f"{names[f.value.id]}.{f.attr}"
    return None


def app_callers_of(writers: set[str]) -> dict[str, set[str]]:
    """The app's functions (modules that import Streamlit, and the pages) that call a writer,
    with the writers each calls; code at a page's top level counts as ``<module>``."""
    found: dict[str, set[str]] = {}
    for module, tree, source in _module_trees("dashboard", "pages"):
        if "import streamlit" not in source:
            continue
        names = _names(tree, module)
        scopes = [(f"{module}.{n.name}", n) for n in tree.body if isinstance(n, ast.FunctionDef)]
        top = ast.Module(
            body=[n for n in tree.body if not isinstance(n, ast.FunctionDef)], type_ignores=[]
        )
        for scope, node in [*scopes, (f"{module}.<module>", top)]:
            for call in (c for c in ast.walk(node) if isinstance(c, ast.Call)):
                target = _called(call, names)
                if target in writers:
                    found.setdefault(scope, set()).add(target)
    return found


# functions that take ``who`` to read by it, not to write: the audit log's filter
READ_BY_WHO = {"dashboard.price_table.audit_entries"}


def test_the_table_lists_every_app_function_that_writes() -> None:
    found = store_writers()
    assert found >= READ_BY_WHO
    writers = found - READ_BY_WHO
    # the finder finds the writers it must (it cannot pass by finding none)
    assert {
        "tracking.budget_store.add_budget",
        "dashboard.account_import.import_csv",
        "dashboard.budget_edits.save_plan",
        "dashboard.price_edits.save_plan",
        "dashboard.scenarios.save_scenario",
        "tracking.reprice.apply_reprice",
        "tracking.catalogue_store.accept_catalogue",
        "dashboard.price_table.mark_verified",
    } <= writers
    covered = {fn for _, functions in PATHS.values() for fn in functions}
    callers = app_callers_of(writers)
    assert callers, "no app function calls a store writer: the finder is broken"
    # _add_price writes through _save (in the table); it is listed for its own arguments
    missing = {scope: sorted(w) for scope, w in callers.items() if scope not in covered}
    assert not missing, f"write paths not held to the editor role here: {missing}"
    unused = covered - set(callers) - {"dashboard.price_editor._add_price"}
    assert not unused, f"listed but no longer writing: {unused}"


# --- the pages, with a crafted session state ---------------------------------------------------

PASSWORD = "correct horse battery staple"
WRITE_BUTTONS = {
    "pricing.save",
    "pricing.rebase",
    "pricing.catalogue_accept",
    "pricing.reprice_apply",
    "budgets.save",
    "whatif.save",
    "whatif.delete",
    "accounts.plans.save",
    "accounts.customers.save",
    "accounts.revenue.save",
    "accounts.import.run",
}
EDITED = {"edited_rows": {0: {"accept": True, "price": "1", "limit_usd": "1"}}}
# what a signed-in editor's clicks and edits would leave in session state, set without signing in
CRAFTED = {
    "pricing.editor": EDITED,
    "pricing.catalogue": EDITED,
    "budgets.editor": EDITED,
    "accounts.plans.editor": EDITED,
    "accounts.customers.editor": EDITED,
    "accounts.revenue.editor": EDITED,
    "whatif.save_name": "sneaky",
}


def _page(name: str, password: str | None) -> AppTest:
    """The page ``name`` on the shared store with the editor password set up; signed in with
    ``password`` when given, else with a forged sign-in token and the crafted state."""
    from dashboard import access

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=90)
    at.secrets["unitwise"] = {"editor_password_hash": access.hash_password(PASSWORD, n=2**10)}
    at.run()
    at.switch_page(f"../pages/{name}.py").run()
    if password is None:
        at.session_state[access._SESSION_KEY] = "0" * 64  # a forged token: not this server's
        for key, value in CRAFTED.items():
            at.session_state[key] = value
    else:
        next(t for t in at.text_input if t.label == "Editor password").input(password)
        next(b for b in at.button if b.label == "Sign in to edit").click()
    if name == "users":  # the tab with the editors (only the open tab runs)
        at.session_state["margins.tab"] = "Plans & customers (edit)"
    at.run()
    assert not at.exception, at.exception
    return at


def _write_buttons(at: AppTest) -> set[str]:
    shown = {b.key for b in at.button if b.key in WRITE_BUTTONS}
    forms = {b.label for b in at.button if b.label == "Add price" or b.label == "Mark verified"}
    return shown | {f for f in forms if not next(b for b in at.button if b.label == f).disabled}


@pytest.mark.parametrize("store_url", [SHARED], indirect=True)
@pytest.mark.parametrize("page", ["pricing", "budgets", "users"])
def test_a_crafted_session_state_shows_no_write_control_and_writes_nothing(
    shared_store: Engine, page: str
) -> None:
    before = counts(shared_store)
    crafted = _page(page, None)
    assert _write_buttons(crafted) == set()
    assert counts(shared_store) == before
    assert _write_buttons(_page(page, PASSWORD))  # the same page, signed in, has them

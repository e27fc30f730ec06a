"""Two editors at once, on both stores: budgets, plans, customers, revenue and scenarios saved
from two sessions (store-level editor calls from threads started together) never lose an update:
the second save is refused with a conflict (or, for a scenario saved under one name, recorded as
replacing the first), and the audit log has one row per applied change, in order, and none for
a refused one. Prices: tests/test_price_edits.py (two and four editors saving at once)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select

from dashboard import account_edits, scenarios
from dashboard.account_edits import EditRefused
from dashboard.accounts import (
    load_plans,
    load_revenue,
    load_terms,
    write_plans,
    write_revenue,
    write_terms,
)
from dashboard.budget_edits import BudgetPlan, plan_edits, save_plan
from dashboard.economics import Plan, RevenueLine, Term
from dashboard.economics.whatif import Levers
from tracking.budget_store import Budget, BudgetError, add_budget, get_budget, list_budgets
from tracking.schema import audit_log

D = Decimal


def at_once(*works: Callable[[], Any]) -> list[Any]:
    """Run each of ``works`` in its own thread, released together; each result or exception."""
    start = threading.Barrier(len(works))
    results: list[Any] = [None] * len(works)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = works[i]()
        except Exception as exc:  # the loser's refusal is the result under test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(works))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def audits(engine: Engine, table: str) -> list[Any]:
    with engine.connect() as conn:
        query = select(audit_log).where(audit_log.c.table_name == table).order_by(audit_log.c.id)
        return list(conn.execute(query))


def assert_in_order(rows: list[Any]) -> None:
    """Audit ids and times both increase: the log reads in the order the changes committed."""
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert [r.at for r in rows] == sorted(r.at for r in rows)


# --- budgets -------------------------------------------------------------------------------------


def budget_edit(stored: list[Budget], name: str, **cells: Any) -> BudgetPlan:
    """The plan an editor's table would make from the budgets it was shown, one row edited."""
    row = [b.name for b in stored].index(name)
    plan = plan_edits(stored, {"edited_rows": {row: cells}})
    assert not plan.problems and plan.changes, plan.problems
    return plan


@pytest.fixture
def budgeted(engine: Engine) -> Engine:
    with engine.begin() as conn:
        add_budget(conn, Budget("team", D(100)), "setup")
        add_budget(conn, Budget("other", D(5)), "setup")
    return engine


def test_the_second_of_two_budget_editors_is_refused_not_written_over(budgeted: Engine) -> None:
    with budgeted.connect() as conn:
        shown = list_budgets(conn)  # both editors began here
    save_plan(budgeted, budget_edit(shown, "team", limit_usd="200"), "alice")
    with pytest.raises(BudgetError, match="changed by someone else since you began"):
        save_plan(budgeted, budget_edit(shown, "team", thresholds="50, 90"), "bob")
    removal = plan_edits(shown, {"deleted_rows": [[b.name for b in shown].index("team")]})
    with pytest.raises(BudgetError, match="changed by someone else since you began"):
        save_plan(budgeted, removal, "carol")  # removing what alice changed, unseen: refused too
    with budgeted.connect() as conn:
        team = get_budget(conn, "team")
    assert team is not None and team.limit_usd == D(200)  # alice's limit stands
    assert team.thresholds == Budget("x", D(0)).thresholds  # bob's refused change is not there
    rows = audits(budgeted, "budgets")
    assert [(r.who, r.action) for r in rows] == [("setup", "add")] * 2 + [("alice", "edit")]
    with budgeted.connect() as conn:  # bob reloads and saves: his change goes onto alice's
        again = list_budgets(conn)
    save_plan(budgeted, budget_edit(again, "team", thresholds="50, 90"), "bob")
    with budgeted.connect() as conn:
        team = get_budget(conn, "team")
    assert team is not None and (team.limit_usd, team.thresholds) == (D(200), (50, 90))


def test_budget_editors_saving_at_once_cannot_both_win(budgeted: Engine) -> None:
    with budgeted.connect() as conn:
        shown = list_budgets(conn)
    limits = ["200", "300", "400", "500"]
    results = at_once(
        *(
            lambda limit=limit, who=f"editor{i}": save_plan(
                budgeted, budget_edit(shown, "team", limit_usd=limit), who
            )
            for i, limit in enumerate(limits)
        )
    )
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 3 and all(isinstance(r, BudgetError) for r in refused), results
    (winner,) = [f"editor{i}" for i, r in enumerate(results) if r is None]
    edits = [r for r in audits(budgeted, "budgets") if r.action == "edit"]
    assert [r.who for r in edits] == [winner]
    with budgeted.connect() as conn:
        team = get_budget(conn, "team")
    assert team is not None and team.limit_usd == D(limits[int(winner[-1])])
    assert edits[0].after["limit_usd"] == limits[int(winner[-1])]


def test_two_editors_adding_one_name_at_once_get_a_message_not_a_crash(engine: Engine) -> None:
    def add(who: str, limit: int) -> None:
        plan = plan_edits([], {"added_rows": [{"name": "new", "limit_usd": str(limit)}]})
        save_plan(engine, plan, who)

    results = at_once(*(lambda i=i: add(f"editor{i}", 10 + i) for i in range(4)))
    refused = [r for r in results if r is not None]
    assert len(refused) == 3, results
    assert all(isinstance(r, BudgetError) and "exists already" in r.reason for r in refused)
    assert len(audits(engine, "budgets")) == 1


def test_editors_of_different_budgets_at_once_all_save_in_order(budgeted: Engine) -> None:
    with budgeted.connect() as conn:
        for i in range(4):
            add_budget(conn, Budget(f"b{i}", D(1)), "setup")
        conn.commit()
        shown = list_budgets(conn)
    results = at_once(
        *(
            lambda i=i: save_plan(budgeted, budget_edit(shown, f"b{i}", limit_usd=f"{i + 2}"), "e")
            for i in range(4)
        )
    )
    assert results == [None] * 4
    rows = audits(budgeted, "budgets")
    assert sorted(r.key for r in rows if r.action == "edit") == [f"b{i}" for i in range(4)]
    assert_in_order(rows)


# --- plans, customers, revenue --------------------------------------------------------------------

PLAN = Plan("pro", D(20), "month", D(10))
TERM = Term("acme", "Acme Inc", "pro", date(2026, 1, 1), None, 3, D(0))
LINE = RevenueLine("acme", date(2026, 1, 1), date(2026, 1, 31), D("99.5"), "usage")
# per table: the column one editor changes and the value each of four editors enters
EDITS = {
    "plans": ("price", ["21", "22", "23", "24"]),
    "customers": ("seats", [4, 5, 6, 7]),
    "revenue": ("amount", ["1.5", "2.5", "3.5", "4.5"]),
}


@pytest.fixture
def accounts(engine: Engine) -> Engine:
    with engine.begin() as conn:
        write_plans(conn, [PLAN], "setup")
        write_terms(conn, [TERM], "setup")
        write_revenue(conn, {"in_1": LINE}, "setup")
    return engine


def stored_value(engine: Engine, kind: str) -> Any:
    with engine.connect() as conn:
        if kind == "plans":
            return load_plans(conn)["pro"].price
        if kind == "customers":
            return load_terms(conn)[0].seats
        return load_revenue(conn)["in_1"].amount


@pytest.mark.parametrize("kind", list(EDITS))
def test_account_editors_saving_at_once_cannot_both_win(accounts: Engine, kind: str) -> None:
    column, values = EDITS[kind]
    with accounts.connect() as conn:
        began = account_edits.start(conn, kind)  # the four editors were shown the same table
    before = len(audits(accounts, kind))

    def save(value: Any, who: str) -> Any:
        with accounts.begin() as conn:
            state = {"edited_rows": {0: {column: value}}}
            return account_edits.save_edit(conn, began, state, who)

    results = at_once(*(lambda v=v, i=i: save(v, f"editor{i}") for i, v in enumerate(values)))
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 3, results
    assert all(isinstance(r, EditRefused) and r.conflict for r in refused), refused
    assert all("by someone else since you began" in str(r) for r in refused)
    (winner,) = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    want = values[winner]
    assert stored_value(accounts, kind) == (D(want) if isinstance(want, str) else want)
    rows = audits(accounts, kind)[before:]
    assert [r.who for r in rows] == [f"editor{winner}"]  # one row, the winner's


# --- scenarios ---------------------------------------------------------------------------------


def test_two_scenarios_saved_under_one_name_at_once_are_both_in_the_log(engine: Engine) -> None:
    def save(i: int) -> Any:
        with engine.begin() as conn:
            return scenarios.save_scenario(conn, "plan b", Levers(user_growth_pct=D(i)), f"e{i}")

    results = at_once(*(lambda i=i: save(i) for i in range(4)))
    assert not [r for r in results if isinstance(r, Exception)], results
    rows = audits(engine, "scenarios")
    assert [r.action for r in rows] == ["add", "edit", "edit", "edit"]
    assert_in_order(rows)
    # each replacement's "before" is the levers the previous one saved: nothing is lost unseen
    assert [r.before for r in rows[1:]] == [r.after for r in rows[:-1]]
    with engine.connect() as conn:
        last = scenarios.load_scenario(conn, "plan b")
    assert last is not None and last.updated_by == rows[-1].who
    assert scenarios.replaced(last)  # the page says the save replaced one (whatif_view)
    assert sum(not scenarios.replaced(r) for r in results) == 1  # the first was an add


def test_every_advisory_lock_has_a_key_of_its_own() -> None:
    """Two writers of different tables sharing a key would wait for each other for nothing
    (accounts and budgets shared 7_401_017). Read from the code, so a new lock is checked too."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    keys: dict[int, list[str]] = {}
    for path in [*root.glob("tracking/**/*.py"), *root.glob("dashboard/**/*.py")]:
        for name, value in re.findall(r"^(\w+_LOCK) = (\d[\d_]*)\b", path.read_text(), re.M):
            keys.setdefault(int(value), []).append(f"{path.name}:{name}")
    assert len(keys) >= 5, keys  # prices, budgets, scenarios, migrations, accounts
    assert all(len(names) == 1 for names in keys.values()), keys

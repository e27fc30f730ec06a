"""The Budgets page, rendered with AppTest from the entry script on both stores: the figures
shown equal ``budget_store.status`` and the projection's output at the moment the page states,
an edit saves with its audit row, bad cells are refused by row and column with nothing saved,
and a reader without the editor role cannot save."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest

from dashboard.budget_data import daily_spend, history
from dashboard.budgets_view import AS_OF
from dashboard.economics.budget_projection import project_budget
from dashboard.formats import usd
from dashboard.md_escape import md_plain
from tests.test_pricing_page import (
    ENTRY,
    PASSWORD,
    PASSWORD_SECRETS,
    click,
    edit_table,
    enter_password,
    frame,
    has_button,
    who,
)
from tracking.alerts import due_alerts
from tracking.budget_store import Budget, add_budget, get_budget, list_budgets, status
from tracking.schema import audit_log, budgets

EDITOR = "budgets.editor"
BUDGETS = (
    Budget(name="everything", limit_usd=Decimal("50"), rollover=True),
    Budget(
        name="gpt-4o week",
        limit_usd=Decimal("5"),
        period="week",
        timezone="Europe/Berlin",
        model="gpt-4o",
        hard=True,
    ),
)


def add(engine: Engine, *found: Budget) -> None:
    with engine.begin() as conn:
        for b in found:
            add_budget(conn, b, who="test", now=datetime(2020, 1, 1, tzinfo=UTC))


def page(engine: Engine, secrets: dict | None = None, editor: bool = True) -> AppTest:
    """The Budgets page; on PostgreSQL signed in with the editor password unless ``editor`` is
    False."""
    shared = engine.dialect.name != "sqlite"
    at = AppTest.from_file(ENTRY, default_timeout=120)
    if secrets is None and shared and editor:
        secrets = PASSWORD_SECRETS
    for name, value in (secrets or {}).items():
        at.secrets[name] = value
    at.run()
    at.switch_page("../pages/budgets.py").run()
    assert not at.exception, at.exception
    if shared and editor:
        enter_password(at, PASSWORD)
    return at


def as_of(at: AppTest) -> datetime:
    caption = next(c.value for c in at.caption if c.value.startswith("Status as of "))
    stamp = caption.removeprefix("Status as of ").split(". ")[0]
    return datetime.strptime(stamp, AS_OF).replace(tzinfo=UTC)


def edit(at: AppTest, edited_rows=None, added_rows=(), deleted_rows=()) -> AppTest:
    return edit_table(at, EDITOR, edited_rows, added_rows, deleted_rows)


def save(at: AppTest) -> AppTest:
    return click(at, "budgets.save")


def can_save(at: AppTest) -> bool:
    return has_button(at, "budgets.save")


def audit_rows(engine: Engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(audit_log).order_by(audit_log.c.id)))


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(budgets)).scalar_one()


def test_the_status_table_shows_status_and_projection(demo_app_store: Engine) -> None:
    add(demo_app_store, *BUDGETS)
    at = page(demo_app_store)
    assert [t.label for t in at.tabs] == ["Budgets", "Alerts", "What-if"]
    now = as_of(at)
    table = frame(at, "breach").set_index("budget")
    with demo_app_store.connect() as conn:
        for b in list_budgets(conn):
            want = status(conn, b, now)
            local_today = now.astimezone(ZoneInfo(b.timezone)).date()
            projection = project_budget(
                want.spend.amount,
                want.limit,
                want.spend.period,
                now,
                daily_spend(conn, b, local_today),
            )
            row = table.loc[b.name]
            assert row["spent"] == usd(want.spend.amount) and want.spend.amount > 0
            assert row["limit"] == usd(want.limit)
            assert row["used"] == f"{want.spend.amount * 100 / want.limit:.1f}%"
            assert row["projected"] == usd(projection.projected)
            assert projection.projected >= want.spend.amount
            assert row["breach"] == (str(projection.breach_day) if projection.breach_day else "")
            unknown = want.spend.unpriced_calls
            assert row["unknown cost"] == (
                f"plus {unknown:,} calls of unknown cost" if unknown else ""
            )
    # every call counts against "everything": the demo's unpriced models are shown beside it
    assert table.loc["everything", "unknown cost"].startswith("plus ")
    assert table.loc["gpt-4o week", "unknown cost"] == ""  # gpt-4o is priced
    assert table.loc["everything", "period"].endswith("(UTC)")


def test_the_alerts_tab_shows_the_alerts_due(demo_app_store: Engine) -> None:
    """The Alerts tab lists what ``due_alerts`` finds (the demo's spend crosses the budgets'
    thresholds and the hard one's limit), none sent yet, with the hard limit called out."""
    tight = Budget(name="tight", limit_usd=Decimal("0.01"), hard=True)
    add(demo_app_store, *BUDGETS, tight)
    at = page(demo_app_store)
    with demo_app_store.connect() as conn:
        want = due_alerts(conn)
    shown = frame(at, "sent to")
    assert list(shown["alert"]) == [a.message for a in want]
    assert set(shown["sent to"]) == {"not yet"}
    assert any(a.kind == "hard_limit" and "tight" in a.message for a in want)
    assert any("at its limit" in e.value for e in at.tabs[1].error)


def test_past_periods_show_spent_against_the_limit(demo_app_store: Engine) -> None:
    add(demo_app_store, BUDGETS[1])
    at = page(demo_app_store)
    now = as_of(at)
    shown = frame(at, "spent_text")
    with demo_app_store.connect() as conn:
        past = history(conn, get_budget(conn, "gpt-4o week"), now)  # type: ignore[arg-type]
    assert list(shown["period"]) == [p.period.label for p in past] and len(past) == 6
    assert list(shown["spent_text"]) == [usd(p.spend.amount) for p in past]
    assert list(shown["limit_text"]) == [usd(p.limit) for p in past]
    assert any(p.spend.amount > 0 for p in past)  # the demo's 20 days reach the past weeks


def test_an_edit_saves_and_is_audited(demo_app_store: Engine) -> None:
    add(demo_app_store, BUDGETS[0])
    at = page(demo_app_store)
    new = {
        "name": "growth",
        "limit_usd": "12.5",
        "period": "day",
        "timezone": "UTC",
        "tag": "team=growth",
        "thresholds": "80,100",
        "hard": True,
    }
    edit(at, {0: {"limit_usd": "75"}}, added_rows=[new])
    save(at)
    assert at.success[0].value == "Saved: added 1 budget, changed 1 budget."
    with demo_app_store.connect() as conn:
        growth = get_budget(conn, "growth")
        everything = get_budget(conn, "everything")
    assert growth == Budget(
        name="growth",
        limit_usd=Decimal("12.5"),
        period="day",
        tag_key="team",
        tag_value="growth",
        thresholds=(80, 100),
        hard=True,
    )
    assert everything is not None and everything.limit_usd == Decimal(75) and everything.rollover
    assert everything.created_by == "test"  # a change keeps who made it, and when
    rows = [r for r in audit_rows(demo_app_store) if r.who != "test"]
    assert [(r.action, r.key, r.who) for r in rows] == [
        ("edit", "everything", who(demo_app_store)),
        ("add", "growth", who(demo_app_store)),
    ]
    assert rows[0].before["limit_usd"] == "50" and rows[0].after["limit_usd"] == "75"
    # the table starts afresh from the store: the new budget is a row, then it is deleted
    shown = frame(at, "thresholds")
    assert list(shown["name"]) == ["everything", "growth"]
    at.session_state[f"{EDITOR}.1"] = {"edited_rows": {}, "added_rows": [], "deleted_rows": [1]}
    at.run()
    save(at)
    assert at.success[0].value == "Saved: removed 1 budget."
    with demo_app_store.connect() as conn:
        assert get_budget(conn, "growth") is None
    assert audit_rows(demo_app_store)[-1].action == "remove"


def test_bad_cells_are_named_and_nothing_is_saved(demo_app_store: Engine) -> None:
    add(demo_app_store, BUDGETS[0])
    at = page(demo_app_store)
    before = audit_rows(demo_app_store)
    bad = {"name": "x", "limit_usd": "lots", "timezone": "Mars/Olympus", "thresholds": "80,50"}
    good = {"name": "fine", "limit_usd": "3"}
    edit(at, {0: {"tag": "team", "limit_usd": "75"}}, added_rows=[bad, good, {"limit_usd": "1"}])
    save(at)
    (error,) = at.error
    lines = md_plain(error.value).split("\n\n")
    assert lines[0] == "Nothing was saved. Fix these cells first:"
    assert lines[1:] == [
        "- Row 1, Tag (key=value): 'team': write key=value, e.g. team=growth",
        "- Row 2, Limit ($): 'lots' is not an amount of dollars",
        "- Row 2, Timezone: unknown timezone 'Mars/Olympus': give an IANA name such as UTC, "
        "Europe/Berlin or America/Los_Angeles",
        "- Row 2, Alerts at (%): must ascend, but 50 follows 80",
        "- Row 4, Name: give the budget a name",
    ]
    assert audit_rows(demo_app_store) == before and count(demo_app_store) == 1
    with demo_app_store.connect() as conn:
        assert get_budget(conn, "everything") == BUDGETS[0]  # the good change waits too


def test_a_reader_without_the_editor_role_cannot_save(demo_app_store: Engine) -> None:
    add(demo_app_store, BUDGETS[0])
    at = page(demo_app_store, PASSWORD_SECRETS, editor=False)
    if demo_app_store.dialect.name == "sqlite":
        assert can_save(at)  # the embedded store is editable
        return
    assert "Enter the editor password" in at.info[0].value and not can_save(at)
    assert "Read-only" in "\n".join(c.value for c in at.caption)
    edit(at, {0: {"limit_usd": "1"}})  # a crafted editor state shows no save button either
    assert not can_save(at)
    shown = frame(at, "thresholds")
    assert list(shown["name"]) == ["everything"] and list(shown["limit_usd"]) == ["50"]
    assert [r.who for r in audit_rows(demo_app_store)] == ["test"]

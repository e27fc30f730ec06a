"""The app's frame rendered with AppTest from the entry script: pages, filters, store line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ENTRY = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture
def app_env(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    st.cache_data.clear()  # results are cached per URL, and each test empties the same store
    yield store_url
    st.cache_data.clear()


def test_overview_on_an_empty_store_says_how_to_start(app_env: str) -> None:
    at = AppTest.from_file(ENTRY, default_timeout=30).run()
    assert not at.exception
    assert "No calls logged yet" in at.info[0].value
    assert at.button[0].label.startswith("Load demo data")


def test_sidebar_names_the_store_without_its_password(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    st.cache_data.clear()
    if store_url.startswith("sqlite"):
        monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
        expected = "Store: SQLite at "
    else:  # the same server reached with a password in the URL: the label must not show it
        with_password = store_url.replace("postgres@", "postgres:s3cret@")
        monkeypatch.setenv("UNITWISE_DATABASE_URL", with_password)
        expected = "Store: PostgreSQL at 127.0.0.1/unitwise_test_"
    at = AppTest.from_file(ENTRY, default_timeout=30).run()
    assert not at.exception
    (line,) = [c.value for c in at.sidebar.caption if c.value.startswith("Store:")]
    assert line.startswith(expected)
    assert "s3cret" not in line


def test_the_sidebar_filters_are_shared_by_every_page(app_env: str) -> None:
    at = AppTest.from_file(ENTRY, default_timeout=30).run()
    at.text_input(key="f_users").input("user_0001, user_0002").run()
    for page in ("costs", "users", "pricing", "budgets", "overview"):
        at.switch_page(f"../pages/{page}.py").run()
        assert not at.exception
        if page in ("users", "pricing", "budgets"):  # pages to come show no filters, and keep them
            assert not [t for t in at.sidebar.text_input if t.key == "f_users"]
            continue
        assert at.text_input(key="f_users").value == "user_0001, user_0002"
        assert at.session_state["filters"].users == ("user_0001", "user_0002")


def test_a_store_without_tables_says_how_to_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNITWISE_DATABASE_URL", f"sqlite:///{tmp_path / 'bare.db'}")
    st.cache_data.clear()
    at = AppTest.from_file(ENTRY, default_timeout=30).run()
    assert not at.exception
    assert "python -m tracking migrate" in at.error[0].value


def test_the_sidebar_says_which_dates_are_shown_and_which_the_box_refuses(app_env: str) -> None:
    at = AppTest.from_file(ENTRY, default_timeout=30).run()
    at.date_input(key="f_dates").set_value((date(2026, 11, 20),)).run()  # a start, no end yet
    (line,) = [c.value for c in at.sidebar.caption if c.value.startswith("Showing")]
    assert line.startswith("Showing 2026-11-20 to 2026-11-20 (pick an end date")
    assert "A date before 2000-01-01" in line and "refused by the box" in line
    assert at.session_state["filters"].start == at.session_state["filters"].end

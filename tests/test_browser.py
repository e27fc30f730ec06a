"""The app in a real browser: `streamlit run` on a free port, Debian's Chromium driven headless.

Every page is opened, its content waited for, and any Streamlit exception box fails the test.
Screenshots go to tests/screenshots/. Under CI=true the test is required (a missing Chromium
fails it); elsewhere it is skipped when /usr/bin/chromium is absent. No browser is downloaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboard import demo
from tests.conftest import CI, add_test_prices
from tracking.db import make_engine
from tracking.events import CallEvent, uuid7
from tracking.migrate import upgrade
from tracking.store import write_batch

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("UNITWISE_CHROMIUM", "/usr/bin/chromium"))
SHOTS = ROOT / "tests" / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# (url path, title in the navigation, text that shows the page's content has rendered)
PAGES = [
    ("", "Overview", "Projected month end"),
    ("costs", "Costs", "Calls of one group"),
    ("users", "Users & margins", "Margin per customer, p50 (median)"),
    ("pricing", "Pricing", "Search provider and model"),
    ("budgets", "Budgets & what-if", "Edit budgets"),
]

FAR_AHEAD = datetime(2099, 1, 1, tzinfo=UTC)

if not CHROMIUM.exists():
    if CI:
        pytest.fail(
            f"CI=true needs Chromium at {CHROMIUM} (apt-get install chromium)", pytrace=False
        )
    pytest.skip(
        f"no Chromium at {CHROMIUM}: apt-get install chromium to run the browser test",
        allow_module_level=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app served by `streamlit run` over a SQLite store with demo data."""
    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'unitwise.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    add_test_prices(url)
    engine = make_engine(url)
    demo.load(engine, calls=5_000, days=30, seed=4, end=datetime.now(UTC))
    with engine.begin() as conn:  # a call logged with a wrong clock, years ahead
        write_batch(conn, [CallEvent(uuid7(), FAR_AHEAD, "openai", "gpt-4o", input_tokens=5)])
    engine.dispose()
    env = {"UNITWISE_DATABASE_URL": url, "UNITWISE_DATA_DIR": str(folder)}
    with serve(folder, ROOT, env) as base:
        yield base


@contextmanager
def serve(folder: Path, cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """`streamlit run` of the app from ``cwd`` (where it looks for `.streamlit/`) on a free
    port, its log in ``folder``; yields the base URL once the server answers."""
    port = free_port()
    log = (folder / "streamlit.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "dashboard" / "app.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
        ],
        cwd=cwd,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:  # noqa: S310 - our local server
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"streamlit did not start:\n{(folder / 'streamlit.log').read_text()}")
            time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_every_page_renders_without_an_exception(app_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            for path, title, marker in PAGES:
                page.goto(f"{app_url}/{path}", wait_until="domcontentloaded")
                expect(page.get_by_text(marker).first).to_be_visible(timeout=45_000)
                # the app is idle once Streamlit's running indicator is gone
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                    timeout=45_000,
                )
                if path in ("", "costs"):  # charts are drawn last
                    expect(page.locator(".vega-embed").first).to_be_visible(timeout=45_000)
                errors = page.locator('[data-testid="stException"]')
                assert errors.count() == 0, f"{title}: {errors.first.inner_text()}"
                expect(page.get_by_role("heading", name=title).first).to_be_visible()
                page.screenshot(path=str(SHOTS / f"{path or 'overview'}.png"), full_page=True)
            # the sidebar names the store the app reads
            expect(page.get_by_text("Store: SQLite at").first).to_be_visible()
        finally:
            browser.close()


def test_what_a_new_user_trips_over_is_said_in_the_browser(app_url: str) -> None:
    """Unpriced costs read "unpriced" (not $0), a far-future call neither moves the default
    range nor hides the data, malformed tag parts are named, and the range shown is said."""
    from playwright.sync_api import expect, sync_playwright

    today = datetime.now(UTC).date()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(app_url, wait_until="domcontentloaded")
            expect(page.get_by_text("dated more than a day ahead").first).to_be_visible(
                timeout=45_000
            )
            expect(page.get_by_text("2099-01-01").first).to_be_visible()
            start = today - timedelta(days=29)
            shown = page.get_by_text(f"Showing {start} to {today}.")
            expect(shown).to_be_visible()
            expect(shown).to_contain_text("refused by the box")
            expect(page.get_by_text("5,000", exact=True).first).to_be_visible()  # the calls

            page.goto(f"{app_url}/costs", wait_until="domcontentloaded")
            tags = page.get_by_label("Tags")
            expect(tags).to_be_visible(timeout=45_000)
            tags.fill("plan:pro, =x")
            tags.press("Enter")
            warning = page.get_by_text("Ignored in the tags")
            expect(warning).to_be_visible(timeout=45_000)
            expect(warning).to_contain_text("plan:pro")
            expect(warning).to_contain_text("no key before")

            # google's demo models have no price here: their cost is unknown, never $0
            providers = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]')
            providers.first.click()
            page.keyboard.type("google")
            page.keyboard.press("Enter")
            page.keyboard.press("Escape")
            cost = page.locator('[data-testid="stMetric"]').filter(has_text="Cost").first
            expect(cost.locator('[data-testid="stMetricValue"]')).to_have_text(
                "unpriced", timeout=45_000
            )
            expect(page.get_by_text("their cost is unknown, not $0").first).to_be_visible()
            page.screenshot(path=str(SHOTS / "costs_unpriced.png"), full_page=True)
        finally:
            browser.close()


def test_a_changed_secrets_file_is_read_at_the_next_page_load(tmp_path: Path) -> None:
    """README: a changed `.streamlit/secrets.toml` needs no restart."""
    from playwright.sync_api import expect, sync_playwright

    stores = [tmp_path / "first.db", tmp_path / "second.db"]
    for store in stores:
        engine = make_engine(f"sqlite:///{store}")
        upgrade(engine)
        engine.dispose()
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text(f'[connections.sql]\nurl = "sqlite:///{stores[0]}"\n')
    env = {"UNITWISE_DATA_DIR": str(tmp_path)}
    with serve(tmp_path, tmp_path, env) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        try:
            page.goto(base, wait_until="domcontentloaded")
            line = page.get_by_text("Store: SQLite at").first
            expect(line).to_contain_text("first.db", timeout=45_000)
            secrets.write_text(f'[connections.sql]\nurl = "sqlite:///{stores[1]}"\n')
            time.sleep(2)  # Streamlit watches the file
            page.goto(base, wait_until="domcontentloaded")
            expect(page.get_by_text("Store: SQLite at").first).to_contain_text(
                "second.db", timeout=45_000
            )
        finally:
            browser.close()


def test_the_pricing_page_in_the_browser(app_url: str) -> None:
    """The Overview's unpriced warning leads to the Pricing page, whose unpriced models come
    first; the editor and a model's history draw."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(app_url, wait_until="domcontentloaded")
            link = page.get_by_role("link", name="Price them on the Pricing page")
            expect(link).to_be_visible(timeout=45_000)
            link.click()
            expect(page.get_by_role("heading", name="Pricing").first).to_be_visible(timeout=45_000)
            unpriced = page.get_by_role("tab", name="Unpriced (")
            expect(unpriced).to_have_attribute("aria-selected", "true", timeout=45_000)
            expect(page.get_by_text("have no price: their cost is unknown").first).to_be_visible()
            page.get_by_label("Search provider and model").fill("openai gpt-4o")
            page.get_by_label("Search provider and model").press("Enter")
            page.get_by_role("tab", name="Edit").click()
            expect(page.get_by_role("button", name="Save as new versions")).to_be_visible(
                timeout=45_000
            )
            grids = page.locator('[data-testid="stDataFrame"]:visible')  # the editor's grid
            expect(grids.first).to_be_visible()
            page.get_by_role("tab", name="History").click()
            expect(page.locator(".vega-embed").first).to_be_visible(timeout=45_000)
            errors = page.locator('[data-testid="stException"]')
            assert errors.count() == 0, errors.first.inner_text()
            page.screenshot(path=str(SHOTS / "pricing_history.png"), full_page=True)
        finally:
            browser.close()

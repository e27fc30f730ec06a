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
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dashboard import demo
from tests.conftest import CI, add_test_prices
from tracking.db import make_engine
from tracking.migrate import upgrade

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
    ("users", "Users & margins", "Coming soon."),
    ("pricing", "Pricing", "Coming soon."),
    ("budgets", "Budgets & what-if", "Coming soon."),
]

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
    engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "UNITWISE_DATABASE_URL": url,
        "UNITWISE_DATA_DIR": str(folder),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    log = (folder / "streamlit.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:
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

"""Secrets never appear in what Unitwise says: a store URL's password, through every way a store
can fail (refused, unknown host, unknown role, bad options, a port or an '@' it cannot parse),
in tracking's log lines, stats(), the CLI's errors (the margins export's too) and the app's
pages; the OTLP endpoint's bearer token in its banner and its 401 answers. (The editor password
and its hash are never kept in session state: tests/test_access.py, test_app_password_sign_in.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from starlette.testclient import TestClient
from streamlit.testing.v1 import AppTest

import tracking
from tracking.client import Tracker
from tracking.config import build_settings
from tracking.otlp_receiver import Receiver
from tracking.otlp_server import build_app

ROOT = Path(__file__).resolve().parent.parent
ENTRY = str(ROOT / "dashboard" / "app.py")
PIECES = ("s3cr3t", "Pa55w0rd")  # the password's two halves: neither may show
PASSWORD = "s3cr3tPa55w0rd"
# each way a store URL with a password can fail; {pw} is the password
URLS = {
    "refused": "postgresql://u:{pw}@127.0.0.1:1/db",
    "unknown role": "postgresql://unitwise_nobody:{pw}@127.0.0.1:5432/postgres",
    "unknown host": "postgresql://u:{pw}@no-such-host.invalid/db",
    "bad option": "postgresql://u:{pw}@127.0.0.1:1/db?sslmode=bogus",
    "password in the query": "postgresql://u@127.0.0.1:1/db?password={pw}",
    "port not a number": "postgresql://u:{pw}@127.0.0.1:x{pw}/db",
    "unencoded @ in the password": "postgresql://u:s3cr3t@Pa55w0rd@127.0.0.1:1/db",
}


# every element the app shows text in (AppTest's lists, the sidebar's included)
TEXT_ELEMENTS = ("exception", "error", "warning", "info", "success", "markdown", "caption")
TEXT_ELEMENTS += ("title", "header", "subheader", "text", "code", "json", "metric")


def url_of(case: str) -> str:
    return URLS[case].format(pw=PASSWORD)


def assert_secret_free(text: str) -> None:
    for piece in PIECES:
        assert piece not in text, text


@pytest.mark.parametrize("case", list(URLS))
def test_tracking_never_logs_or_reports_the_password(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNITWISE_STRICT")  # as a host runs it: a bad URL turns tracking off
    monkeypatch.setenv("UNITWISE_DATABASE_URL", url_of(case))
    monkeypatch.setenv("UNITWISE_JOURNAL_PATH", str(tmp_path / "journal.jsonl"))
    caplog.set_level("DEBUG")
    try:
        tracking.record("openai", "gpt-4o", input_tokens=10, output_tokens=5)
        tracking.flush(timeout=5)
        said = json.dumps(tracking.stats(), default=str)
    finally:
        tracking.shutdown(timeout=5)
    assert "error" in said  # it did fail, and said why ...
    assert_secret_free(said + caplog.text)  # ... without the password


# the CLI's commands that open the store: tracking's, and the margins export's
COMMANDS = {"migrate": ("tracking", "migrate"), "export": ("dashboard.report", "margins")}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(URLS))
def test_the_cli_never_prints_the_password(case: str, command: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    module, name = COMMANDS[command]
    done = subprocess.run(
        [sys.executable, "-m", module, name, "--url", url_of(case)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode != 0 and "error" in done.stderr
    assert_secret_free(done.stdout + done.stderr)


@pytest.mark.parametrize("case", ["refused", "unknown role", "unencoded @ in the password"])
def test_the_app_never_shows_the_password(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNITWISE_DATABASE_URL", url_of(case))
    st.cache_data.clear()
    try:
        at = AppTest.from_file(ENTRY, default_timeout=60).run()
        shown = [str(getattr(e, "value", e)) for kind in TEXT_ELEMENTS for e in getattr(at, kind)]
    finally:
        st.cache_data.clear()
    assert any("store" in s.lower() for s in shown), shown  # it says the store is the problem
    assert_secret_free("\n".join(shown) + repr(at.session_state.to_dict()))


def test_the_otlp_endpoint_never_shows_its_token(tmp_path: Path) -> None:
    settings = build_settings(f"sqlite:///{tmp_path / 'otlp.db'}", journal_path=tmp_path / "j")
    tracker = Tracker(settings)
    try:
        client = TestClient(build_app(Receiver(tracker), token=PASSWORD))
        for header in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Bearer s3cr3t"}):
            answer = client.post("/v1/traces", content=b"{}", headers=header)
            assert answer.status_code == 401
            assert_secret_free(answer.text + repr(answer.headers))
    finally:
        tracker.stop(5)


def test_the_otlp_banner_names_the_token_variable_not_the_token(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UNITWISE_OTLP_TOKEN": PASSWORD}
    argv = [sys.executable, "-m", "tracking", "otlp", "--port", "0", "--url", url_of("refused")]
    argv += ["--journal", str(tmp_path / "otlp.jsonl")]
    server = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()  # printed before it serves
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    assert "bearer token from $UNITWISE_OTLP_TOKEN" in banner and "PostgreSQL at" in banner
    assert_secret_free(banner + errors)

"""Alerts: budgets' thresholds and hard limits, spend anomalies (k and the minimum honoured, the
demo's spike day found), delivery to a real SMTP server and a real HTTP receiver once per
channel and alert, retried after a failure, the CLI's exit codes, and the app's view."""

from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import Engine, func, select

from tracking.alert_delivery import Email, Webhook, channels_from_env, deliver
from tracking.alerts import Alert, due_alerts
from tracking.anomalies import AnomalyRule, find_anomalies, judge
from tracking.budget_store import Budget, add_budget
from tracking.cli import main
from tracking.events import CallEvent
from tracking.schema import alerts_sent
from tracking.store import write_batch

ROOT = Path(__file__).resolve().parent.parent
D0 = date(2026, 10, 1)  # the hand-made history starts here


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def call(when: datetime, cost: str | None, **scope: str) -> CallEvent:
    defaults = {"provider": "openai", "model": "gpt-4o", "user_id": "u_1", "feature": "chat"}
    return CallEvent(
        id=uuid.uuid4(),
        occurred_at=when,
        cost_usd=None if cost is None else Decimal(cost),
        **{**defaults, **scope},  # type: ignore[arg-type]
    )


def write(engine: Engine, events: list[CallEvent]) -> None:
    with engine.begin() as conn:
        write_batch(conn, events)


def budget(engine: Engine, **values: object) -> Budget:
    with engine.begin() as conn:
        return add_budget(conn, Budget(**values), who="test")  # type: ignore[arg-type]


# --- anomalies: the rule, pure -----------------------------------------------------------------


def test_judge_honours_k_the_minimum_and_the_history() -> None:
    days = {D0 + timedelta(days=i): Decimal(10) for i in range(14)}
    spike = D0 + timedelta(days=14)
    rule = AnomalyRule(k=Decimal(3), min_usd=Decimal(10))
    assert judge({**days, spike: Decimal(30)}, spike, rule, D0) is None  # 3x is not more than 3x
    assert judge({**days, spike: Decimal("30.01")}, spike, rule, D0) == (Decimal(10), 14)
    assert judge({**days, spike: Decimal("30.01")}, spike, AnomalyRule(k="3.5"), D0) is None
    small = {d: Decimal("0.5") for d in days}
    assert judge({**small, spike: Decimal(9)}, spike, rule, D0) is None  # under the minimum
    assert judge({**small, spike: Decimal(9)}, spike, AnomalyRule(min_usd=1), D0) is not None
    # a scope five days old has five days of history: too few for the default seven
    young = D0 + timedelta(days=9)
    assert judge({**days, spike: Decimal(100)}, spike, rule, young) is None
    assert judge({**days, spike: Decimal(100)}, spike, AnomalyRule(min_history_days=5), young)


def test_days_without_calls_count_as_zero_after_the_first() -> None:
    # spend on 4 of 14 days: the median of the window is $0, so $10 is an anomaly
    sparse = {D0 + timedelta(days=i): Decimal(50) for i in (0, 4, 8, 12)}
    day = D0 + timedelta(days=14)
    assert judge({**sparse, day: Decimal(10)}, day, AnomalyRule(), D0) == (Decimal(0), 14)


@pytest.mark.parametrize(
    "bad", [{"k": "-1"}, {"k": "0.5"}, {"k": "x"}, {"min_usd": "NaN"}, {"scopes": ("team",)}]
)
def test_bad_rules_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        AnomalyRule(**bad)


# --- anomalies: from the rollups, both stores -------------------------------------------------


def history(engine: Engine) -> date:
    """14 days of chat on gpt-4o at $10 (two calls of $5, one unpriced), search on gpt-4o-mini
    at $1 (both user u_1) and user u_2 at $0.50 on gpt-4o without a feature, a day; on the 15th
    chat spends $40, search $4.50 and u_2 $20. Returns the 15th."""
    events = []
    for i in range(14):
        day = D0 + timedelta(days=i)
        events += [call(at(day, 9), "5"), call(at(day, 15), "5"), call(at(day, 16), None)]
        events.append(call(at(day), "1", feature="search", model="gpt-4o-mini"))
        events.append(call(at(day), "0.5", feature=None, user_id="u_2"))
    spike = D0 + timedelta(days=14)
    events += [call(at(spike, h), "10") for h in (1, 2, 3, 4)]
    events.append(call(at(spike), "4.5", feature="search", model="gpt-4o-mini"))
    events.append(call(at(spike), "20", feature=None, user_id="u_2"))
    write(engine, events)
    return spike


def test_anomalies_per_scope_from_the_rollups(engine: Engine) -> None:
    spike = history(engine)
    with engine.connect() as conn:
        found = find_anomalies(conn, D0, spike + timedelta(days=1))
        k5 = find_anomalies(conn, spike, spike, AnomalyRule(k=5))
        small = find_anomalies(conn, spike, spike, AnomalyRule(min_usd="4", scopes=("feature",)))
    got = {(a.day, a.scope, a.value): (a.spend, a.median) for a in found}
    assert got == {
        (spike, "all", None): (Decimal("64.5"), Decimal("11.5")),  # 5.6x
        (spike, "feature", "chat"): (Decimal(40), Decimal(10)),
        (spike, "model", "gpt-4o"): (Decimal(60), Decimal("10.5")),
        (spike, "user", "u_1"): (Decimal("44.5"), Decimal(11)),  # 4.0x
        (spike, "user", "u_2"): (Decimal(20), Decimal("0.5")),
    }  # search and gpt-4o-mini (4.5x, $4.50) stay under the $10 minimum
    assert all(isinstance(a.spend, Decimal) for a in found)
    assert {(a.scope, a.value) for a in k5} == {("all", None), ("model", "gpt-4o"), ("user", "u_2")}
    assert [(a.scope, a.value) for a in small] == [("feature", "chat"), ("feature", "search")]


# --- budgets --------------------------------------------------------------------------------


NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)


def test_thresholds_crossed_and_the_hard_limit_hit(engine: Engine) -> None:
    budget(engine, name="chat", limit_usd=Decimal(100), feature="chat", hard=True)
    budget(engine, name="soft", limit_usd=Decimal(1000), thresholds=(5, 10))
    budget(engine, name="idle", limit_usd=Decimal(0), feature="nothing")  # $0 of $0: no alert
    write(engine, [call(NOW - timedelta(days=d), "17") for d in range(5)])  # $85 in November
    write(engine, [call(datetime(2026, 10, 31, 23, tzinfo=UTC), "500")])  # last month's
    with engine.connect() as conn:
        alerts = due_alerts(conn, NOW, anomaly_days=0)
    assert [a.key for a in alerts] == [
        "budget|chat|2026-11|50%",
        "budget|chat|2026-11|80%",
        "budget|soft|2026-11|5%",
    ]
    assert alerts[1].message == (
        "Budget 'chat' passed 80%: $85.00 of $100.00 in 2026-11 (feature=chat)."
    )
    assert alerts[1].detail["spent_usd"] == "85" and alerts[1].detail["threshold_percent"] == 80
    write(engine, [call(NOW, "15"), call(NOW, None)])  # $100 exactly, and one of unknown cost
    with engine.connect() as conn:
        alerts = due_alerts(conn, NOW, anomaly_days=0)
    assert [a.key for a in alerts] == [
        "budget|chat|2026-11|hard",
        "budget|chat|2026-11|50%",
        "budget|chat|2026-11|80%",
        "budget|chat|2026-11|100%",
        "budget|soft|2026-11|5%",
        "budget|soft|2026-11|10%",
    ]
    assert alerts[0].kind == "hard_limit"
    assert "plus 1 call of unknown cost; calls it covers are refused" in alerts[0].message
    with engine.connect() as conn:  # December is a new period: nothing due yet
        assert due_alerts(conn, datetime(2026, 12, 1, tzinfo=UTC), anomaly_days=0) == []


# --- delivery: a real SMTP server and a real HTTP receiver ------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    messages: list[str] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's name
        self.messages.append(envelope.content.decode())
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


def test_email_logs_in_with_the_user_and_password() -> None:
    box, logins = Mailbox(), []

    def check(server, session, envelope, mechanism, data) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"right", handled=False)

    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=check,
        auth_require_tls=False,  # plain text on localhost only: STARTTLS is the default
        auth_exclude_mechanism={"LOGIN"},  # PLAIN only: smtplib would retry a refusal with LOGIN
    )
    controller.start()
    try:
        alert = Alert("k", "threshold", "Budget 'x' passed 50%.")
        mail = Email("127.0.0.1", controller.port, "a@x.test", ("b@x.test",), "me", "wrong", False)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            mail.send([alert])
        Email("127.0.0.1", controller.port, "a@x.test", ("b@x.test",), "me", "right", False).send(
            [alert]
        )
    finally:
        controller.stop()
    assert logins == [("me", "wrong"), ("me", "right")]
    assert len(box.messages) == 1 and "Budget 'x' passed 50%." in box.messages[0]


class Receiver(ThreadingHTTPServer):
    bodies: list[dict]
    status: int


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(self.server.status)
        self.end_headers()
        if self.server.status == 200:
            self.server.bodies.append(json.loads(body))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), _Handler)
    server.bodies, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def hook_url(server: Receiver) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


def sent_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(alerts_sent)).scalar_one()


def test_each_alert_is_delivered_once_per_channel_and_a_failure_retried(
    engine: Engine, smtp: tuple[Mailbox, int], receiver: Receiver
) -> None:
    box, port = smtp
    budget(engine, name="team", limit_usd=Decimal(10), thresholds=(50, 100))
    write(engine, [call(NOW, "6")])
    channels = [
        Webhook(hook_url(receiver)),
        Email("127.0.0.1", port, "alerts@example.com", ("ops@example.com",), starttls=False),
    ]
    with engine.connect() as conn:
        first = due_alerts(conn, NOW, anomaly_days=0)
    done = deliver(engine, first, channels, NOW)
    assert [(d.channel, len(d.sent), d.error) for d in done] == [
        ("webhook", 1, None),
        ("email", 1, None),
    ]
    assert receiver.bodies == [
        {"text": "Unitwise: 1 new alert\n- Budget 'team' passed 50%: $6.00 of $10.00 in "
                 "2026-11 (all calls)."}
    ]  # fmt: skip
    assert len(box.messages) == 1 and "Budget 'team' passed 50%" in box.messages[0]
    assert "Subject: Unitwise: 1 new alert" in box.messages[0]
    assert "To: ops@example.com" in box.messages[0]

    # the check runs again: nothing new is sent anywhere
    assert [len(d.sent) for d in deliver(engine, first, channels, NOW)] == [0, 0]
    assert len(receiver.bodies) == 1 and len(box.messages) == 1

    # the 100% threshold is crossed while the webhook fails and the SMTP server is down
    write(engine, [call(NOW, "5")])
    with engine.connect() as conn:
        second = due_alerts(conn, NOW, anomaly_days=0)
    receiver.status = 500
    down = Email("127.0.0.1", free_port(), "a@example.com", ("ops@example.com",), starttls=False)
    done = deliver(engine, second, [channels[0], down], NOW)
    assert [d.sent for d in done] == [(), ()]
    assert "HTTP Error 500" in (done[0].error or "")
    assert "ConnectionRefusedError" in (done[1].error or "")
    assert sent_rows(engine) == 2  # the failed ones are not marked sent

    # the next run, with both back, sends just the new alert
    receiver.status = 200
    done = deliver(engine, second, channels, NOW)
    assert [[a.key for a in d.sent] for d in done] == [["budget|team|2026-11|100%"]] * 2
    assert "passed 100%" in receiver.bodies[-1]["text"] and "50%" not in receiver.bodies[-1]["text"]
    assert len(box.messages) == 2 and "passed 100%" in box.messages[1]
    assert sent_rows(engine) == 4


def test_two_runs_at_once_send_each_alert_once(engine: Engine, receiver: Receiver) -> None:
    budget(engine, name="team", limit_usd=Decimal(10), thresholds=tuple(range(1, 41)))
    write(engine, [call(NOW, "5")])
    with engine.connect() as conn:
        alerts = due_alerts(conn, NOW, anomaly_days=0)
    assert len(alerts) == 40
    results: list = []
    hook = [Webhook(hook_url(receiver))]
    runs = [
        threading.Thread(target=lambda: results.extend(deliver(engine, alerts, hook, NOW)))
        for _ in range(4)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert all(d.error is None for d in results), results
    sent = [line for body in receiver.bodies for line in body["text"].splitlines()[1:]]
    assert len(sent) == 40 and len(set(sent)) == 40
    assert sum(len(d.sent) for d in results) == 40


def test_channels_from_the_environment() -> None:
    assert channels_from_env({}) == []
    env = {
        "UNITWISE_ALERT_WEBHOOK": "https://hooks.slack.com/services/T/B/X",
        "UNITWISE_SMTP_HOST": "smtp.example.com",
        "UNITWISE_SMTP_USER": "me",
        "UNITWISE_SMTP_PASSWORD": "pw",
        "UNITWISE_SMTP_FROM": "a@example.com",
        "UNITWISE_SMTP_TO": "b@example.com, c@example.com",
    }
    hook, mail = channels_from_env(env)
    assert hook == Webhook("https://hooks.slack.com/services/T/B/X")
    assert mail == Email(
        "smtp.example.com", 587, "a@example.com", ("b@example.com", "c@example.com"), "me", "pw"
    )
    assert mail.starttls  # on unless turned off
    for bad, name in [
        ({"UNITWISE_ALERT_WEBHOOK": "hooks.slack.com"}, "UNITWISE_ALERT_WEBHOOK"),
        ({**env, "UNITWISE_SMTP_PORT": "smtp"}, "UNITWISE_SMTP_PORT"),
        ({**env, "UNITWISE_SMTP_TO": " "}, "UNITWISE_SMTP_FROM"),
        ({**env, "UNITWISE_SMTP_STARTTLS": "maybe"}, "UNITWISE_SMTP_STARTTLS"),
    ]:
        with pytest.raises(ValueError, match=name):
            channels_from_env(bad)


# --- the CLI -------------------------------------------------------------------------------


def test_cli_check_delivers_and_exits_3_on_a_hard_limit(
    store_url: str,
    engine: Engine,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = datetime.now(UTC)
    budget(engine, name="soft", limit_usd=Decimal(10), thresholds=(50,))
    write(engine, [call(now, "6")])
    monkeypatch.setenv("UNITWISE_ALERT_WEBHOOK", hook_url(receiver))

    assert main(["alerts", "check", "--url", store_url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[threshold] Budget 'soft' passed 50%" in out and "Dry run" in out
    assert receiver.bodies == [] and sent_rows(engine) == 0

    assert main(["alerts", "check", "--url", store_url]) == 0
    assert "webhook: sent 1 new alert(s)." in capsys.readouterr().out
    assert main(["alerts", "check", "--url", store_url]) == 0
    assert "webhook: sent 0 new alert(s)." in capsys.readouterr().out
    assert len(receiver.bodies) == 1

    budget(engine, name="hard", limit_usd=Decimal(5), hard=True, thresholds=(100,))
    assert main(["alerts", "check", "--url", store_url]) == 3
    out = capsys.readouterr().out
    assert "[hard_limit] Budget 'hard' hit its hard limit" in out
    assert main(["alerts", "check", "--url", store_url]) == 3  # still hit, nothing new sent
    assert "webhook: sent 0 new alert(s)." in capsys.readouterr().out
    assert len(receiver.bodies) == 2

    receiver.status = 503
    budget(engine, name="more", limit_usd=Decimal(6), thresholds=(100,))
    assert main(["alerts", "check", "--url", store_url, "--anomaly-days", "0"]) == 3
    assert "webhook: delivery failed, will retry next run" in capsys.readouterr().out
    with engine.begin() as conn:  # the hard budget gone: the failure's exit code shows
        conn.execute(alerts_sent.delete())
    from tracking.budget_store import remove_budget

    with engine.begin() as conn:
        remove_budget(conn, "hard", who="test")
    assert main(["alerts", "check", "--url", store_url]) == 1


def test_cli_bad_options_exit_2_and_an_unreachable_store_1(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alerts", "check", "--url", store_url, "--k", "lots"]) == 2
    assert "k: 'lots' is not a number" in capsys.readouterr().err
    assert main(["alerts", "check", "--url", store_url, "--anomaly-scopes", "team"]) == 2
    monkeypatch.setenv("UNITWISE_SMTP_HOST", "smtp.example.com")
    assert main(["alerts", "check", "--url", store_url]) == 2
    assert "UNITWISE_SMTP_FROM" in capsys.readouterr().err
    monkeypatch.delenv("UNITWISE_SMTP_HOST")
    assert main(["alerts", "check", "--url", "postgresql://postgres@127.0.0.1:1/none"]) == 1
    assert "OperationalError" in capsys.readouterr().err


def test_cli_as_a_process_without_channels(store_url: str, engine: Engine) -> None:
    budget(engine, name="hard", limit_usd=Decimal(1), hard=True)
    write(engine, [call(datetime.now(UTC), "2")])
    quiet = {
        k: v for k, v in os.environ.items() if not k.startswith(("UNITWISE_ALERT", "UNITWISE_SMTP"))
    }
    done = subprocess.run(
        [sys.executable, "-m", "tracking", "alerts", "check", "--url", store_url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**quiet, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 3, done.stderr
    assert "No delivery channel configured" in done.stdout
    assert sent_rows(engine) == 0


# --- the demo's spike -----------------------------------------------------------------------


def test_the_demo_spike_day_is_found(engine: Engine) -> None:
    from dashboard import demo
    from tracking.catalogue_store import load_catalogue_if_empty

    with engine.begin() as conn:
        load_catalogue_if_empty(conn)
    end = datetime(2026, 11, 20, 15, tzinfo=UTC)
    calls, days, seed = 6_000, 30, 3
    demo.load(engine, calls=calls, days=days, seed=seed, end=end)
    pop = next(demo.frames(calls, days, seed, end))[1]
    spike = end.date() - timedelta(days=days - 1 - pop.spike_day)
    with engine.connect() as conn:
        found = find_anomalies(conn, end.date() - timedelta(days=days - 1), end.date())
    assert [a.day for a in found if a.scope == "all"] == [spike]
    assert found and all(a.day == spike for a in found)


# --- the app's view -------------------------------------------------------------------------


def _view() -> None:
    from datetime import UTC, datetime

    from dashboard.alerts_view import show_alerts

    show_alerts(now=datetime(2026, 11, 20, 15, tzinfo=UTC))


def test_the_view_shows_the_alerts_and_where_they_went(
    store_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("UNITWISE_DATABASE_URL", store_url)
    at = AppTest.from_function(_view, default_timeout=60).run()
    assert at.success[0].value.startswith("No alerts")

    budget(engine, name="hard", limit_usd=Decimal(10), hard=True, thresholds=(50, 100))
    write(engine, [call(NOW, "12")])
    spike = history(engine)  # anomalies of October: not in the last two days
    assert spike < NOW.date()
    with engine.connect() as conn:
        alerts = due_alerts(conn, NOW)
    deliver(engine, alerts[:1], [Webhook("http://127.0.0.1:9/unused")], NOW)  # fails: not sent
    with engine.begin() as conn:
        conn.execute(
            alerts_sent.insert().values(alert_key=alerts[1].key, channel="email", sent_at=NOW)
        )
    at = AppTest.from_function(_view, default_timeout=60).run()
    assert not at.exception
    assert at.error[0].value.startswith("1 hard budget at its limit")
    assert at.warning[0].value.startswith("2 alerts")
    table = at.dataframe[0].value
    assert list(table["kind"]) == ["hard limit hit", "threshold", "threshold"]
    assert list(table["sent to"]) == ["not yet", "email", "not yet"]
    assert (
        table["alert"][2] == "Budget 'hard' passed 100%: $12.00 of $10.00 in 2026-11 (all calls)."
    )


def test_alert_modules_stay_out_of_import_tracking() -> None:
    code = (
        "import sys, tracking; print(sorted(m for m in sys.modules if m.startswith("
        "('tracking.alert', 'tracking.anomalies', 'aiosmtpd', 'smtplib'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "[]"

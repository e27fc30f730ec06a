"""Alert delivery: a webhook (a Slack-compatible JSON body) and e-mail over SMTP, each alert sent
once per channel however often the check runs.

Once per channel: for each channel, one transaction inserts an ``alerts_sent`` row per alert not
sent before (the insert skips a key already there), sends the new ones in one message, and
commits only when the send succeeded. A failed send rolls the rows back, so the alerts stay
unsent and the next run retries them. A second run at the same time waits on the first one's
uncommitted rows (PostgreSQL: the row lock; SQLite: the write lock, up to its busy timeout) and
then skips what the first one sent, so two cron runs never both send an alert. (On SQLite the
send holds the write lock, at most ``TIMEOUT`` per channel: the host app's writer waits that
long, its calls queued meanwhile.) A run killed
after the send and before the commit sends those alerts again next time (at least once, never
silently lost).

Settings come from the environment (:func:`channels_from_env`):
``UNITWISE_ALERT_WEBHOOK`` (an https URL, e.g. a Slack incoming webhook) and
``UNITWISE_SMTP_HOST``, ``UNITWISE_SMTP_PORT`` (587), ``UNITWISE_SMTP_USER``,
``UNITWISE_SMTP_PASSWORD``, ``UNITWISE_SMTP_FROM``, ``UNITWISE_SMTP_TO`` (comma separated) and
``UNITWISE_SMTP_STARTTLS`` (1, the default: upgrade the connection before logging in; 0 for a
local relay without TLS).
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Protocol

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from tracking.alerts import Alert
from tracking.schema import alerts_sent

TIMEOUT = 10.0  # seconds a webhook or SMTP server may take


class Channel(Protocol):
    """Somewhere alerts go: ``name`` is what ``alerts_sent.channel`` records."""

    @property
    def name(self) -> str: ...

    def send(self, alerts: Sequence[Alert]) -> None:
        """Deliver the alerts in one message; raise when that failed."""


def summary(alerts: Sequence[Alert]) -> str:
    """The text of one message: a line per alert."""
    head = f"Unitwise: {len(alerts)} new alert{'s' if len(alerts) != 1 else ''}"
    return "\n".join([head, *(f"- {a.message}" for a in alerts)])


@dataclass(frozen=True)
class Webhook:
    """POSTs ``{"text": ...}`` as JSON, which Slack's incoming webhooks (and most chat tools'
    compatible ones) show as a message. Any status but 2xx is a failure."""

    url: str = field(repr=False)  # a credential: never in a log line or an error
    timeout: float = TIMEOUT
    name: str = "webhook"

    def __post_init__(self) -> None:
        # only http(s): urlopen would also read file: and custom schemes
        if not self.url.startswith(("https://", "http://")):
            raise ValueError("a webhook URL must start with https:// or http://")

    def send(self, alerts: Sequence[Alert]) -> None:
        body = json.dumps({"text": summary(alerts)}).encode()
        # S310 below: the URL is http(s), checked in __post_init__ (no file: or custom scheme)
        request = urllib.request.Request(  # noqa: S310
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
            if not 200 <= answer.status < 300:
                raise OSError(f"webhook answered HTTP {answer.status}")


@dataclass(frozen=True)
class Email:
    """One plain-text e-mail over SMTP, STARTTLS (with certificate checks) unless turned off."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = None
    starttls: bool = True
    timeout: float = TIMEOUT
    name: str = "email"

    def send(self, alerts: Sequence[Alert]) -> None:
        message = EmailMessage()
        message["Subject"] = summary(alerts).splitlines()[0]
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(summary(alerts))
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)


def _flag(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name}={text!r}: write 1 or 0")


def channels_from_env(env: Mapping[str, str] | None = None) -> list[Channel]:
    """The channels the environment configures (none: an empty list); ValueError naming the
    variable that is wrong."""
    env = os.environ if env is None else env
    found: list[Channel] = []
    url = env.get("UNITWISE_ALERT_WEBHOOK", "").strip()
    if url:
        try:  # Webhook refuses a scheme other than http(s)
            found.append(Webhook(url))
        except ValueError:
            # the value is not echoed: a webhook URL is a credential (Slack's carry the key)
            raise ValueError("UNITWISE_ALERT_WEBHOOK: give an http(s) URL") from None
    host = env.get("UNITWISE_SMTP_HOST", "").strip()
    if host:
        port_text = env.get("UNITWISE_SMTP_PORT", "587").strip()
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"UNITWISE_SMTP_PORT={port_text!r}: give a port number")
        to = tuple(a.strip() for a in env.get("UNITWISE_SMTP_TO", "").split(",") if a.strip())
        sender = env.get("UNITWISE_SMTP_FROM", "").strip()
        if not to or not sender:
            raise ValueError("UNITWISE_SMTP_HOST is set: set UNITWISE_SMTP_FROM and _TO too")
        found.append(
            Email(
                host,
                int(port_text),
                sender,
                to,
                user=env.get("UNITWISE_SMTP_USER") or None,
                password=env.get("UNITWISE_SMTP_PASSWORD") or None,
                starttls=_flag("UNITWISE_SMTP_STARTTLS", env.get("UNITWISE_SMTP_STARTTLS", "1")),
            )
        )
    return found


def _claim(conn: Connection, alert: Alert, channel: str, now: datetime) -> bool:
    """Insert the alert's row for ``channel`` unless one is there; True when this call did."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    row = {"alert_key": alert.key, "channel": channel, "sent_at": now, "detail": alert.detail}
    query = dialect.insert(alerts_sent).values(row).on_conflict_do_nothing()
    return bool(conn.execute(query).rowcount)


@dataclass(frozen=True)
class Delivery:
    """What one channel did: ``sent`` the alerts delivered now, or ``error`` (nothing marked)."""

    channel: str
    sent: tuple[Alert, ...]
    error: str | None = None


def deliver(
    engine: Engine,
    alerts: Sequence[Alert],
    channels: Sequence[Channel],
    now: datetime | None = None,
) -> list[Delivery]:
    """Send each channel the alerts it has not had yet, marking them sent (see the module's
    docstring). Never raises for a channel's failure: its Delivery says what went wrong."""
    now = now or datetime.now(UTC)
    done = []
    for channel in channels:
        try:
            with engine.begin() as conn:
                new = tuple(a for a in alerts if _claim(conn, a, channel.name, now))
                if new:
                    channel.send(new)
            done.append(Delivery(channel.name, new))
        except Exception as exc:  # the rows are rolled back: retried next run
            done.append(Delivery(channel.name, (), f"{type(exc).__name__}: {exc}"))
    return done


def sent_channels(conn: Connection, keys: Sequence[str]) -> dict[str, list[str]]:
    """The channels each alert key was sent to."""
    found: dict[str, list[str]] = {}
    if not keys:
        return found
    query = select(alerts_sent.c.alert_key, alerts_sent.c.channel).where(
        alerts_sent.c.alert_key.in_(list(keys))
    )
    for key, channel in conn.execute(query.order_by(alerts_sent.c.channel)):
        found.setdefault(key, []).append(channel)
    return found

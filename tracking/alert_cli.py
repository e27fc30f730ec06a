"""``python -m tracking alerts check``: the alerts due now, printed and delivered, for cron.

Exit codes: 0 nothing wrong; 3 a hard budget's limit is hit this period (whether or not its
alert was sent before: cron sees the state every run); 1 a delivery failed (its alerts stay
unsent and are retried next run) or the store could not be read; 2 a bad option or setting.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from tracking.alert_delivery import channels_from_env, deliver
from tracking.alerts import due_alerts
from tracking.anomalies import SCOPES, AnomalyRule
from tracking.budget_cli import _url
from tracking.db import describe_url, make_engine

HARD_LIMIT_HIT = 3
DELIVERY_FAILED = 1


def _rule(args: argparse.Namespace) -> AnomalyRule:
    scopes = tuple(s.strip() for s in args.anomaly_scopes.split(",") if s.strip())
    return AnomalyRule(k=args.k, min_usd=args.min_usd, scopes=scopes)


def check(args: argparse.Namespace) -> int:
    rule = _rule(args)
    if args.anomaly_days < 0:
        raise ValueError("--anomaly-days: give 0 (no anomalies) or more days")
    channels = [] if args.dry_run else channels_from_env()
    url = _url(args.url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            alerts = due_alerts(conn, datetime.now(UTC), rule, args.anomaly_days)
        print(f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''} due in {describe_url(url)}.")
        for alert in alerts:
            print(f"[{alert.kind}] {alert.message}")
        code = HARD_LIMIT_HIT if any(a.kind == "hard_limit" for a in alerts) else 0
        if args.dry_run:
            print("Dry run: nothing sent, nothing marked sent.")
            return code
        if not channels:
            print(
                "No delivery channel configured (UNITWISE_ALERT_WEBHOOK, UNITWISE_SMTP_HOST): "
                "nothing sent."
            )
        for done in deliver(engine, alerts, channels):
            if done.error is not None:
                print(f"{done.channel}: delivery failed, will retry next run: {done.error}")
                code = code or DELIVERY_FAILED
            else:
                print(f"{done.channel}: sent {len(done.sent)} new alert(s).")
        return code
    finally:
        engine.dispose()


def register(sub: argparse._SubParsersAction, url_help: str) -> None:
    """The ``alerts`` command and its ``check``."""
    alerts = sub.add_parser("alerts", help="budget and anomaly alerts: check and deliver")
    cmds = alerts.add_subparsers(dest="alerts_command", required=True)
    cmd = cmds.add_parser(
        "check",
        help="print the alerts due, send the new ones (exit 3: a hard limit is hit)",
        description="Print the alerts due now and send each new one once to the webhook "
        "(UNITWISE_ALERT_WEBHOOK) and e-mail (UNITWISE_SMTP_*) channels. Exit 3 when a hard "
        "budget's limit is hit, 1 when a delivery failed (retried next run).",
    )
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument("--dry-run", action="store_true", help="print only: send and mark nothing")
    cmd.add_argument("--k", default="3", help="anomaly: a day above k x its 14-day median (3)")
    cmd.add_argument("--min-usd", default="10", help="anomaly: and at least this spend (10)")
    cmd.add_argument(
        "--anomaly-days", type=int, default=2, help="UTC days judged, today included (2)"
    )
    cmd.add_argument(
        "--anomaly-scopes",
        default=",".join(SCOPES),
        help=f"anomaly scopes, comma separated ({','.join(SCOPES)})",
    )
    cmd.set_defaults(func=check)

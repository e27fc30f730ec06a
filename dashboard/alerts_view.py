"""The alerts in the app: the same alerts ``python -m tracking alerts check`` prints (hard limits
hit, thresholds crossed, spend anomalies), with the channels each was sent to. Widgets only:
the alerts come from ``tracking.alerts.due_alerts`` and ``tracking.alert_delivery.sent_channels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from dashboard.db import engine as app_engine
from dashboard.formats import plural
from tracking.alert_delivery import sent_channels
from tracking.alerts import Alert, due_alerts
from tracking.anomalies import AnomalyRule

KIND_LABELS = {"hard_limit": "hard limit hit", "threshold": "threshold", "anomaly": "anomaly"}


def alerts_frame(alerts: Sequence[Alert], sent: dict[str, list[str]]) -> pd.DataFrame:
    """One row per alert: its kind, what it says, and where it was sent ('not yet')."""
    return pd.DataFrame(
        {
            "kind": [KIND_LABELS[a.kind] for a in alerts],
            "alert": [a.message for a in alerts],
            "sent to": [", ".join(sent.get(a.key, [])) or "not yet" for a in alerts],
        },
        columns=["kind", "alert", "sent to"],
    )


def show_alerts(
    engine: Engine | None = None, now: datetime | None = None, rule: AnomalyRule | None = None
) -> list[Alert]:
    """Show the alerts due now; returns them. A count of hard limits hit as an error, of the
    others as a warning, and the alerts in a table (as text: budget names, features and users
    are whatever someone typed, never markdown)."""
    with (engine or app_engine()).connect() as conn:
        alerts = due_alerts(conn, now, rule)
        sent = sent_channels(conn, [a.key for a in alerts])
    if not alerts:
        st.success("No alerts: no budget threshold crossed, no spend anomaly in the last 2 days.")
        return alerts
    hard = sum(a.kind == "hard_limit" for a in alerts)
    if hard:
        st.error(
            f"{plural(hard, 'hard budget')} at its limit: the host app refuses the calls "
            "it covers (see the table).",
            icon=":material/block:",
        )
    if len(alerts) > hard:
        st.warning(f"{plural(len(alerts) - hard, 'alert')}: budget thresholds, spend anomalies.")
    st.dataframe(alerts_frame(alerts, sent), hide_index=True, width="stretch")
    return alerts

"""The app's connection to the store: ``st.connection("sql")``, URL from secrets or environment."""

from __future__ import annotations

import streamlit as st
from sqlalchemy import Engine
from streamlit.connections import SQLConnection

from tracking.config import resolve_url
from tracking.db import describe_url, normalize_url


def store_url() -> str:
    """``[connections.sql] url`` in secrets, else $UNITWISE_DATABASE_URL / $DATABASE_URL, else
    the embedded SQLite file; normalised to the driver the project ships."""
    secret = None
    try:
        secret = st.secrets.get("connections", {}).get("sql", {}).get("url")
    except FileNotFoundError:  # no secrets.toml at all: fine
        secret = None
    return normalize_url(resolve_url(secret)).render_as_string(hide_password=False)


def connection(url: str | None = None) -> SQLConnection:
    """The shared connection (Streamlit caches it per URL for the whole server)."""
    return st.connection("sql", type="sql", url=url or store_url())


def engine(url: str | None = None) -> Engine:
    return connection(url).engine


def store_label() -> str:
    """Which store the app reads, without the password."""
    return describe_url(store_url())

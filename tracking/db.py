"""Database URLs and engines: the one place that knows which driver the project ships."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


def normalize_url(url: str | URL) -> URL:
    """Map what hosting providers hand out to the drivers we ship.

    ``postgres://`` and ``postgresql://`` (which SQLAlchemy 2.1 would map to psycopg 3) both become
    ``postgresql+psycopg2://``; other URLs pass through unchanged.
    """
    raw = str(url) if isinstance(url, URL) else url
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://") :]
    # the errors below never quote the URL: it may hold a password, and they are logged and shown
    try:
        parsed = make_url(raw)
    except ValueError:  # int() of the port, whose text may be a piece of the password
        raise ArgumentError("the store URL's port is not a number") from None
    if parsed.host and "@" in parsed.host:  # an '@' of the password, unencoded: the rest of
        # the password would be taken for the host, and the driver's error would name it
        raise ArgumentError("the store URL has an '@' after its password: write it as %40")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def describe_url(url: str | URL) -> str:
    """A human line naming the store, without the password."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite at {parsed.database or ':memory:'}"
    return f"PostgreSQL at {parsed.host or 'localhost'}/{parsed.database or ''}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # the WAL file keeps its largest size once a checkpoint has restarted it: 592 MB after app
    # sessions that kept reading while the writer ingested (bench/readers); cut back to 64 MB
    cursor.execute("PRAGMA journal_size_limit=67108864")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str | URL, **kwargs: object) -> Engine:
    """An engine for the store: WAL and a busy timeout on SQLite, pre-ping on PostgreSQL."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)  # type: ignore[arg-type]
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs["connect_args"] = {**PG_CONNECT_ARGS, **kwargs.get("connect_args", {})}  # type: ignore[dict-item]
    return create_engine(parsed, **kwargs)  # type: ignore[arg-type]


# libpq's connection options. A store that stops answering in the middle of a statement (a
# failover, a NAT or firewall forgetting the flow) would otherwise hold a connection in recv()
# until the kernel's default keepalive gives up, after two hours; a server-side
# statement_timeout cannot end that wait. With these the kernel drops such a connection after
# about 25 s of silence (10 s idle, then 3 probes 5 s apart), or 30 s after data it sent was
# never acknowledged, and the writer journals the batch.
PG_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}

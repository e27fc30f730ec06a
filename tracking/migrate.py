"""Bring a store to the current schema with Alembic (the same migrations on both stores)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, func, select

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATE_LOCK = 7_401_019  # the PostgreSQL advisory lock every migration run takes


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Keep Alembic's INFO lines ("Context impl SQLiteImpl", "Running upgrade ...") out of a
    host app's log while tracking migrates its embedded store behind the app's back."""
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(max(logging.WARNING, level))
    try:
        yield
    finally:
        logger.setLevel(level)


def one_run_at_a_time(connection: Connection) -> None:
    """Make this transaction the store's only migration run until it ends, before Alembic
    reads the store's revision: a second run (another replica's ``migrate``, the writer
    upgrading its embedded SQLite store) waits, then finds nothing left to do, instead of
    failing on a table the first has just made. SQLite: its write lock for the whole run
    (the driver would otherwise run each DDL statement in a transaction of its own, so the
    run was not atomic either); writers wait for it (busy timeout) or journal."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(MIGRATE_LOCK)))
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def unknown_revisions(connection: Connection) -> set[str]:
    """The store's revisions that these migrations do not have: a newer release migrated it
    (its migrations keep the writers of an older one working, or these journal)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with _alembic_quiet():  # run inside the host app, as the embedded store's upgrade
        heads = MigrationContext.configure(connection).get_current_heads()
        scripts = ScriptDirectory.from_config(alembic_config())
        known = {rev.revision for rev in scripts.walk_revisions()}
    return set(heads) - known


def upgrade(engine: Engine, revision: str = "head", quiet: bool = False) -> None:
    """Run every pending migration in one transaction per migration run. ``quiet``: Alembic
    logs warnings only (the embedded store, migrated inside the host app)."""
    cfg = alembic_config()
    with engine.begin() as connection, _alembic_quiet() if quiet else nullcontext():
        one_run_at_a_time(connection)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as connection:
        one_run_at_a_time(connection)
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)

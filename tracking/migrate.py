"""Bring a store to the current schema with Alembic (the same migrations on both stores)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


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


def upgrade(engine: Engine, revision: str = "head", quiet: bool = False) -> None:
    """Run every pending migration in one transaction per migration run. ``quiet``: Alembic
    logs warnings only (the embedded store, migrated inside the host app)."""
    cfg = alembic_config()
    with engine.begin() as connection, _alembic_quiet() if quiet else nullcontext():
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)

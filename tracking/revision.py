"""The schema revision this release writes, and whether a store is at it, read without Alembic.

The embedded SQLite store is checked at every writer start, before its first write: importing
Alembic and loading its scripts took 150-220 ms there on a current store (``bench/README.md``,
"prepare"), calls queueing in memory meanwhile. A store already at ``HEAD`` needs none of it;
any other goes through ``tracking.migrate``. ``tests/test_schema.py`` holds ``HEAD`` to the
migrations' own head, so a new migration cannot be forgotten here.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, select

HEAD = "0007"  # the newest file in tracking/migrations/versions

# Alembic's own table (its name and column as Alembic makes them); not in the schema's metadata
_alembic_version = Table("alembic_version", MetaData(), Column("version_num", String(32)))


def is_current(connection: Connection) -> bool:
    """True when the store is at exactly this release's head; False when it is older, newer,
    branched or not made yet (``tracking.migrate`` then decides what to do)."""
    if not inspect(connection).has_table(_alembic_version.name):
        return False
    versions = connection.execute(select(_alembic_version.c.version_num)).scalars().all()
    return versions == [HEAD]

"""the calls' BRIN time index summarizes each block range as soon as it fills (autosummarize)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 19:30:00.000000

PostgreSQL only. A BRIN index can rule out only the block ranges it has summarized: a query on a
time range reads every page added since the last summary. Without ``autosummarize`` only VACUUM
summarizes, and autovacuum runs on a partition after a fifth of its rows were inserted, so a
month of 10M calls may hold 2M unsummarized rows that the pages' "yesterday so far" and
future-dated reads scan on every render (bench/readers, 2.4M such rows: 312 ms and 399 ms;
once summarized 27 ms and 1.2 ms). With it, each filled range is queued for summary as soon as
rows go into the next one, and autovacuum summarizes it on its next visit (within
``autovacuum_naptime``, a minute by default).

A partitioned index's options cannot be altered, and a new partition copies its parent's, so
the index is made again: the new parent ``ON ONLY calls``, an index with the option built on each
partition and attached to it, the old parent dropped (its partitions' indexes with it) and the
new ones given the old names. Each build reads its partition (0.7 s for 2.4M calls on the 2-core
machine) and, in the migration's transaction, holds writes to the calls until it commits: a
writer meanwhile waits or journals, and replays once the migration is done.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEX = "ix_calls_occurred_at"


def upgrade() -> None:
    _rebuild_time_index(autosummarize=True)


def downgrade() -> None:
    _rebuild_time_index(autosummarize=False)


def _rebuild_time_index(autosummarize: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite's time index is a B-tree: nothing to summarize
    quote = bind.dialect.identifier_preparer.quote
    option = "on" if autosummarize else "off"
    new = f"{INDEX}_new"
    # first: its lock on the calls keeps a writer from adding a partition until the commit
    op.execute(
        f"CREATE INDEX {quote(new)} ON ONLY calls USING brin (occurred_at)"
        f" WITH (autosummarize = {option})"
    )
    partitions = (
        bind.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_class p ON p.oid = i.inhparent"
                " WHERE p.relname = 'calls' ORDER BY c.relname"
            )
        )
        .scalars()
        .all()
    )
    for partition in partitions:
        built = f"{partition}_occurred_at_new"
        op.execute(
            f"CREATE INDEX {quote(built)} ON {quote(partition)} USING brin (occurred_at)"
            f" WITH (autosummarize = {option})"
        )
        op.execute(f"ALTER INDEX {quote(new)} ATTACH PARTITION {quote(built)}")
    op.execute(f"DROP INDEX {quote(INDEX)}")
    op.execute(f"ALTER INDEX {quote(new)} RENAME TO {quote(INDEX)}")
    for partition in partitions:  # the names PostgreSQL gives a partition's own copy
        built, named = f"{partition}_occurred_at_new", f"{partition}_occurred_at_idx"
        op.execute(f"ALTER INDEX {quote(built)} RENAME TO {quote(named)}")

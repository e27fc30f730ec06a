"""narrower rollups: daily_feature_model_rollups and daily_user_rollups, filled from daily_rollups

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 22:10:00.000000

The new tables are sums of ``daily_rollups`` over fewer keys, so they are filled from it, not
from ``calls``: calls removed by retention still count, exactly as in ``daily_rollups``.
Writers of an older ``tracking`` would keep adding to ``daily_rollups`` only: upgrade them
together with the store (a writer of this version fails until the migration has run, and
journals its calls until then).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

import tracking.sqltypes

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# As they were at 0001 (a migration must not follow later changes of tracking.schema).
COUNTS = (
    "calls",
    "error_calls",
    "unpriced_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "duration_ms_sum",
)
TOTALS = (*COUNTS, "cost_usd")
NEW_TABLES = {
    "daily_feature_model_rollups": ("day", "feature", "provider", "model"),
    "daily_user_rollups": ("day", "user_id"),
}
KEY_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "day": sa.Date(),
    "user_id": sa.String(length=200),
    "feature": sa.String(length=200),
    "provider": sa.String(length=64),
    "model": sa.String(length=200),
}


def _totals() -> list[sa.Column[Any]]:
    return [
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTS),
        sa.Column("cost_usd", tracking.sqltypes.Money(precision=20, scale=9), nullable=False),
    ]


def upgrade() -> None:
    for name, keys in NEW_TABLES.items():
        op.create_table(
            name,
            *(sa.Column(key, KEY_TYPES[key], nullable=False) for key in keys),
            *_totals(),
            sa.PrimaryKeyConstraint(*keys, name=op.f(f"pk_{name}")),
        )
    op.create_index(
        "ix_daily_user_rollups_user_id_day",
        "daily_user_rollups",
        ["user_id", "day"],
        postgresql_include=[
            "calls",
            "error_calls",
            "unpriced_calls",
            "input_tokens",
            "output_tokens",
            "cost_usd",
        ],
    )

    bind = op.get_bind()
    source = sa.table("daily_rollups", *(sa.column(k) for k in KEY_TYPES), *map(sa.column, TOTALS))
    for name, keys in NEW_TABLES.items():
        target = sa.table(name, *map(sa.column, keys), *map(sa.column, TOTALS))
        grouped = [source.c[key] for key in keys]
        sums = [sa.func.sum(source.c[total]) for total in TOTALS]
        query = sa.select(*grouped, *sums).group_by(*grouped)
        bind.execute(sa.insert(target).from_select([*keys, *TOTALS], query))


def downgrade() -> None:
    op.drop_index("ix_daily_user_rollups_user_id_day", table_name="daily_user_rollups")
    for name in reversed(NEW_TABLES):
        op.drop_table(name)

"""budgets: a limit on a scope's spend in a calendar period, in an IANA timezone

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 09:00:00.000000

A new table only: nothing is filled, and writers of an older ``tracking`` keep working. The
limit is Money (NUMERIC on PostgreSQL, integer nano-dollars on SQLite): exact on both stores.
The checks hold what every writer must: a known period, a limit of at least zero, and a tag
scope as a key and a value together.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracking.sqltypes

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("customer_id", sa.String(length=200), nullable=True),
        sa.Column("feature", sa.String(length=200), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("tag_key", sa.String(length=200), nullable=True),
        sa.Column("tag_value", sa.Text(), nullable=True),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("limit_usd", tracking.sqltypes.Money(precision=20, scale=9), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("rollover", sa.Boolean(), nullable=False),
        sa.Column("created_at", tracking.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.CheckConstraint("period IN ('day', 'week', 'month')", name=op.f("ck_budgets_period")),
        sa.CheckConstraint("limit_usd >= 0", name=op.f("ck_budgets_limit_usd")),
        sa.CheckConstraint("(tag_key IS NULL) = (tag_value IS NULL)", name=op.f("ck_budgets_tag")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_budgets")),
    )


def downgrade() -> None:
    op.drop_table("budgets")

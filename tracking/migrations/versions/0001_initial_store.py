"""initial store: calls, rollups, prices

Revision ID: 0001
Revises:
Create Date: 2026-11-22 23:08:17.723974
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracking.sqltypes

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_ids",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", tracking.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_ids")),
    )

    op.create_table(
        "calls",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", tracking.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("ttft_ms", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("requested_model", sa.String(length=200), nullable=True),
        sa.Column("operation", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("feature", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_type", sa.String(length=200), nullable=True),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=True),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=True),
        sa.Column("units", sa.JSON(), nullable=True),
        sa.Column("batch", sa.Boolean(), nullable=False),
        sa.Column("cost_usd", tracking.sqltypes.Money(precision=20, scale=9), nullable=True),
        sa.Column("cost_source", sa.String(length=16), nullable=True),
        sa.Column("price_version_id", sa.Integer(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("environment", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", "occurred_at", name=op.f("pk_calls")),
        postgresql_partition_by="RANGE (occurred_at)",
    )
    op.create_index("ix_calls_feature_occurred_at", "calls", ["feature", "occurred_at"])
    op.create_index("ix_calls_model_occurred_at", "calls", ["model", "occurred_at"])
    op.create_index("ix_calls_occurred_at", "calls", ["occurred_at"], postgresql_using="brin")
    op.create_index("ix_calls_user_id_occurred_at", "calls", ["user_id", "occurred_at"])

    op.create_table(
        "daily_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("feature", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("error_calls", sa.BigInteger(), nullable=False),
        sa.Column("unpriced_calls", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms_sum", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", tracking.sqltypes.Money(precision=20, scale=9), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "user_id", "feature", "provider", "model", name=op.f("pk_daily_rollups")
        ),
    )
    op.create_index("ix_daily_rollups_feature_day", "daily_rollups", ["feature", "day"])
    op.create_index("ix_daily_rollups_model_day", "daily_rollups", ["model", "day"])
    op.create_index("ix_daily_rollups_user_id_day", "daily_rollups", ["user_id", "day"])

    op.create_table(
        "model_patterns",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("pattern", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "pattern", name=op.f("pk_model_patterns")),
    )
    op.create_table(
        "price_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("effective_from", tracking.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", tracking.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_versions")),
        sa.UniqueConstraint(
            "provider",
            "model",
            "effective_from",
            name=op.f("uq_price_versions_provider_model_effective_from"),
        ),
    )
    op.create_table(
        "prices",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("tier_above", sa.BigInteger(), nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("rate", tracking.sqltypes.Rate(precision=24, scale=12), nullable=False),
        sa.Column("per", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "version_id", "unit", "tier_above", "variant", name=op.f("pk_prices")
        ),
    )


def downgrade() -> None:
    op.drop_table("prices")
    op.drop_table("price_versions")
    op.drop_table("model_patterns")
    op.drop_index("ix_daily_rollups_user_id_day", table_name="daily_rollups")
    op.drop_index("ix_daily_rollups_model_day", table_name="daily_rollups")
    op.drop_index("ix_daily_rollups_feature_day", table_name="daily_rollups")

    op.drop_table("daily_rollups")
    op.drop_index("ix_calls_user_id_occurred_at", table_name="calls")
    op.drop_index("ix_calls_occurred_at", table_name="calls")
    op.drop_index("ix_calls_model_occurred_at", table_name="calls")
    op.drop_index("ix_calls_feature_occurred_at", table_name="calls")

    op.drop_table("calls")

    op.drop_table("call_ids")

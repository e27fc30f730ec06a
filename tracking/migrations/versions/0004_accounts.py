"""accounts: plans, customers (subscription terms), customer_users and revenue

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 10:30:00.000000

New tables only: nothing is filled, and writers of an older ``tracking`` keep working. Money
is Money (NUMERIC on PostgreSQL, integer nano-dollars on SQLite) and a discount Percent
(NUMERIC on PostgreSQL, decimal text on SQLite): exact on both stores. A plan's currency can
only be USD.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracking.sqltypes

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("price", tracking.sqltypes.Money(precision=20, scale=9), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("included_usage", tracking.sqltypes.Money(precision=20, scale=9), nullable=True),
        sa.Column("active_from", sa.Date(), nullable=True),
        sa.Column("active_to", sa.Date(), nullable=True),
        sa.CheckConstraint("period IN ('month', 'year')", name=op.f("ck_plans_period")),
        sa.CheckConstraint("currency = 'USD'", name=op.f("ck_plans_currency_usd")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_plans")),
    )
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("plan", sa.String(length=200), nullable=True),
        sa.Column("end", sa.Date(), nullable=True),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("discount_pct", tracking.sqltypes.Percent(precision=9, scale=6), nullable=False),
        sa.Column("custom_price", tracking.sqltypes.Money(precision=20, scale=9), nullable=True),
        sa.CheckConstraint("seats >= 1", name=op.f("ck_customers_seats")),
        sa.ForeignKeyConstraint(["plan"], ["plans.name"], name=op.f("fk_customers_plan_plans")),
        sa.PrimaryKeyConstraint("customer_id", "start", name=op.f("pk_customers")),
    )
    op.create_table(
        "customer_users",
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_customer_users")),
    )
    op.create_index("ix_customer_users_customer_id", "customer_users", ["customer_id"])
    op.create_table(
        "revenue",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("amount", tracking.sqltypes.Money(precision=20, scale=9), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revenue")),
    )
    op.create_index(
        "ix_revenue_customer_id_period_start", "revenue", ["customer_id", "period_start"]
    )
    op.create_index("ix_revenue_period_start", "revenue", ["period_start"])


def downgrade() -> None:
    op.drop_index("ix_revenue_period_start", table_name="revenue")
    op.drop_index("ix_revenue_customer_id_period_start", table_name="revenue")
    op.drop_table("revenue")
    op.drop_index("ix_customer_users_customer_id", table_name="customer_users")
    op.drop_table("customer_users")
    op.drop_table("customers")
    op.drop_table("plans")

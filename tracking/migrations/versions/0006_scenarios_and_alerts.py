"""scenarios (saved what-if levers) and alerts_sent (each alert delivered once per channel)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:30:00.000000

New tables only: nothing is filled, and writers of an older ``tracking`` keep working.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracking.sqltypes

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scenarios",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", tracking.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", tracking.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scenarios")),
    )
    op.create_table(
        "alerts_sent",
        sa.Column("alert_key", sa.String(length=400), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("sent_at", tracking.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("alert_key", "channel", name=op.f("pk_alerts_sent")),
    )


def downgrade() -> None:
    op.drop_table("alerts_sent")
    op.drop_table("scenarios")

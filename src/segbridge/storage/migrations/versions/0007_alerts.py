"""alerts: each account's alert settings and the last notification per condition

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 02:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_settings",
        sa.Column("account_id", sa.String(40),
                  sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("email_recipients", sa.JSON(), nullable=False),
        sa.Column("webhook_ciphertext", sa.Text(), nullable=True),
        sa.Column("webhook_key_id", sa.String(40), nullable=True),
        sa.Column("run_failed", sa.Boolean(), nullable=False),
        sa.Column("run_errors_over_count", sa.Integer(), nullable=True),
        sa.Column("run_errors_over_share", sa.Float(), nullable=True),
        sa.Column("connection_offline", sa.Boolean(), nullable=False),
        sa.Column("connection_online", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
    )
    op.create_table(
        "alerts_sent",
        sa.Column("subject_id", sa.String(40), primary_key=True),
        sa.Column("condition", sa.String(30), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_alerts_sent_account_id", "alerts_sent", ["account_id"])
    op.create_table(
        "alert_connection_states",
        sa.Column("connection_id", sa.String(40),
                  sa.ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_connection_states")
    op.drop_index("ix_alerts_sent_account_id", table_name="alerts_sent")
    op.drop_table("alerts_sent")
    op.drop_table("alert_settings")

"""webhooks: each webhook flow's listener, the records its requests brought, the last payloads

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_listeners",
        sa.Column("flow_id", sa.String(40), sa.ForeignKey("flows.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("secret_ciphertext", sa.Text(), nullable=True),
        sa.Column("secret_key_id", sa.String(40), nullable=True),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("verified", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_webhook_listeners_account_id", "webhook_listeners", ["account_id"])
    for table in ("webhook_records", "webhook_recent"):
        op.create_table(
            table,
            sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
            sa.Column("flow_id", sa.String(40), sa.ForeignKey("flows.id", ondelete="CASCADE"),
                      nullable=False),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("request_id", sa.String(40), nullable=False),
            sa.Column("payload", sa.JSON(), nullable=False),
        )
        op.create_index(f"ix_{table}_flow_id", table, ["flow_id"])


def downgrade() -> None:
    for table in ("webhook_recent", "webhook_records"):
        op.drop_index(f"ix_{table}_flow_id", table_name=table)
        op.drop_table(table)
    op.drop_index("ix_webhook_listeners_account_id", table_name="webhook_listeners")
    op.drop_table("webhook_listeners")

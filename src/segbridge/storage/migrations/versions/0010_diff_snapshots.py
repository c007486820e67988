"""diff syncs: each import's snapshot of what was sent, and a run's staged calls

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "diff_snapshots",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("flow_id", sa.String(40), sa.ForeignKey("flows.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("import_name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("staging_run_id", sa.String(40), nullable=True),
        sa.UniqueConstraint("flow_id", "import_name"),
    )
    op.create_table(
        "diff_entries",
        sa.Column("snapshot_id", ROW_ID,
                  sa.ForeignKey("diff_snapshots.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key_hash", sa.BigInteger(), primary_key=True),
        sa.Column("call_hash", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "diff_staged",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("snapshot_id", ROW_ID,
                  sa.ForeignKey("diff_snapshots.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("key_hash", sa.BigInteger(), nullable=False),
        sa.Column("call_hash", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("diff_staged")
    op.drop_table("diff_entries")
    op.drop_table("diff_snapshots")

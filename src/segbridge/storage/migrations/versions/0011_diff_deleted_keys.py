"""diff syncs' deleted keys: each key's value and identity, the keys a run found gone, and
what a run stages for them

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "diff_keys",
        sa.Column("snapshot_id", ROW_ID,
                  sa.ForeignKey("diff_snapshots.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key_hash", sa.BigInteger(), primary_key=True),
        sa.Column("about", sa.LargeBinary(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "diff_gone",
        sa.Column("snapshot_id", ROW_ID,
                  sa.ForeignKey("diff_snapshots.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key_hash", sa.BigInteger(), primary_key=True),
        sa.Column("call_hash", sa.BigInteger(), nullable=False),
        sa.Column("about", sa.LargeBinary(), nullable=True),
        sqlite_with_rowid=False,
    )
    # nullable: added in place, a staged table of millions of rows is not copied
    op.add_column("diff_staged", sa.Column("about", sa.LargeBinary(), nullable=True))
    op.add_column("diff_staged", sa.Column("seen_only", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("diff_staged") as table:
        table.drop_column("seen_only")
        table.drop_column("about")
    op.drop_table("diff_gone")
    op.drop_table("diff_keys")

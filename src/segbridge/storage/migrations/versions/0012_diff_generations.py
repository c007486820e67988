"""diff syncs' generations: how many runs moved each snapshot (a salt of its messageIds)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("diff_snapshots", sa.Column("generation", sa.Integer(), nullable=False,
                                              server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("diff_snapshots") as table:
        table.drop_column("generation")

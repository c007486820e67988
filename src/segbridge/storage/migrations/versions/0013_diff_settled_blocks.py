"""diff syncs: the digests of the file blocks whose every record a snapshot holds

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable (none settled): added in place
    op.add_column("diff_snapshots", sa.Column("settled_blocks", sa.LargeBinary(),
                                              nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("diff_snapshots") as batch:
        batch.drop_column("settled_blocks")

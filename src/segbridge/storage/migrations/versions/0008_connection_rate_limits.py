"""connection rate limits: requests per second and events per second (None: no limit)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("connections", sa.Column("requests_per_second", sa.Float(), nullable=True))
    op.add_column("connections", sa.Column("events_per_second", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("events_per_second")
        batch.drop_column("requests_per_second")

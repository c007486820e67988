"""the cluster governor: request slots, shared pause state, fair shares and rate limits
(token buckets) per connection pool

Created on every database so the schema is one; only PostgreSQL installs use them
(``segbridge.concurrency.cluster``), where governor_slots and governor_wants are UNLOGGED.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 02:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "governor_pools",
        sa.Column("pool", sa.String(100), primary_key=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("current_limit", sa.Integer(), nullable=False),
        sa.Column("pause_seconds", sa.Float(), nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "governor_slots",
        sa.Column("pool", sa.String(100), primary_key=True),
        sa.Column("slot", sa.Integer(), primary_key=True),
        sa.Column("holder", sa.String(100), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_governor_slots_holder", "governor_slots", ["holder"])
    op.create_table(
        "governor_wants",
        sa.Column("pool", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(100), primary_key=True),
        sa.Column("wants_until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "governor_buckets",
        sa.Column("pool", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # slots are taken and given back twice per request: without WAL a commit waits for no
        # disk flush (about 4x faster here). After a crash or a fail-over the table is empty;
        # the governors' heartbeat puts the rows back (holders then start afresh)
        op.execute("ALTER TABLE governor_slots SET UNLOGGED")
        op.execute("ALTER TABLE governor_wants SET UNLOGGED")


def downgrade() -> None:
    op.drop_table("governor_buckets")
    op.drop_table("governor_wants")
    op.drop_index("ix_governor_slots_holder", table_name="governor_slots")
    op.drop_table("governor_slots")
    op.drop_table("governor_pools")

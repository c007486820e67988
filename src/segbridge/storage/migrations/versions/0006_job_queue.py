"""the job queue: procrastinate's schema (PostgreSQL only)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 02:15:00
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by issue 15's work


def downgrade() -> None:
    pass

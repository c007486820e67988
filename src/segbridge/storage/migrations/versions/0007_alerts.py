"""alerts: each account's alert settings and the last notification per condition

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 02:15:00
"""

from __future__ import annotations

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by issue 15's work


def downgrade() -> None:
    pass

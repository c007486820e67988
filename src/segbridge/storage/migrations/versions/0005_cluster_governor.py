"""the cluster governor: request slots and shared pause state per connection pool

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 02:15:00
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # filled in by issue 15's work


def downgrade() -> None:
    pass

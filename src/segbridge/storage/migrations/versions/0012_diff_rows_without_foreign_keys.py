"""diff syncs: the rows of a snapshot (entries, staged, keys, gone) without a foreign key

A foreign key is checked for every row written: on PostgreSQL, staging 1M rows by COPY took
4.8 s with it and 1.1 s without, merging them into the entries 5.0 s against 2.6 s. The
snapshots themselves keep theirs (a deleted flow's snapshots go with it); their rows are
deleted by the flow's deletion (``DiffStore.delete_flow``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = ("diff_entries", "diff_staged", "diff_keys", "diff_gone")
WITHOUT_ROWID = {"diff_entries", "diff_keys", "diff_gone"}  # SQLite (as made by 0010, 0011)
NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s"}  # SQLite's keys have no name: batch
# mode names them by this convention, to drop them


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        if bind.dialect.name == "sqlite":
            with op.batch_alter_table(table, recreate="always", naming_convention=NAMES,
                                      table_kwargs=_table_kwargs(table)) as batch:
                batch.drop_constraint(f"fk_{table}_snapshot_id", type_="foreignkey")
            continue
        for key in sa.inspect(bind).get_foreign_keys(table):
            if key["referred_table"] == "diff_snapshots" and key["name"]:
                op.drop_constraint(key["name"], table, type_="foreignkey")


def downgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:  # rows whose snapshot is gone would fail their key
        op.execute(f"DELETE FROM {table} WHERE snapshot_id NOT IN "  # noqa: S608
                   "(SELECT id FROM diff_snapshots)")
    for table in TABLES:
        if bind.dialect.name == "sqlite":
            with op.batch_alter_table(table, recreate="always",
                                      table_kwargs=_table_kwargs(table)) as batch:
                batch.create_foreign_key(f"fk_{table}_snapshot_id", "diff_snapshots",
                                         ["snapshot_id"], ["id"], ondelete="CASCADE")
            continue
        op.create_foreign_key(f"{table}_snapshot_id_fkey", table, "diff_snapshots",
                              ["snapshot_id"], ["id"], ondelete="CASCADE")


def _table_kwargs(table: str) -> dict[str, object]:
    return {"sqlite_with_rowid": False} if table in WITHOUT_ROWID else {}

"""the job queue: procrastinate's schema (PostgreSQL only)

On PostgreSQL, the tables, types and functions of procrastinate (the job queue of
``segbridge worker``, see ``segbridge.queueing``) as the installed procrastinate ships them
(``SchemaManager.get_schema()``), so ``segbridge serve``/``worker`` on an empty database just
work. Nothing on SQLite: there, runs stay in-process.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 02:15:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PROCRASTINATE_OBJECTS = (  # (kind, name), dropped in this order by ``downgrade``
    ("TABLE", "procrastinate_events"), ("TABLE", "procrastinate_periodic_defers"),
    ("TABLE", "procrastinate_jobs"), ("TABLE", "procrastinate_workers"),
    ("TYPE", "procrastinate_job_to_defer_v1"), ("TYPE", "procrastinate_job_event_type"),
    ("TYPE", "procrastinate_job_status"),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from procrastinate.schema import SchemaManager

    exists = bind.exec_driver_sql(
        "SELECT to_regclass('procrastinate_jobs') IS NOT NULL").scalar()
    if exists:  # (applied by hand before segbridge did it): keep it
        return
    # the driver's own cursor: the script holds many statements, ``%`` and ``:name`` text that
    # SQLAlchemy would read as parameters; one transaction with the rest of the migrations
    cursor = bind.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(SchemaManager.get_schema())
    finally:
        cursor.close()


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    functions = [row[0] for row in bind.exec_driver_sql(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = current_schema() AND left(p.proname, 13) = 'procrastinate'")]
    if functions:
        bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {', '.join(functions)} CASCADE")
    for kind, name in PROCRASTINATE_OBJECTS:
        bind.exec_driver_sql(f"DROP {kind} IF EXISTS {name} CASCADE")

"""The migrations build the schema the code expects: after `migrate`, nothing differs from the
models (a column added to a model without a migration fails here, not in production)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

import segbridge.alerts.models
import segbridge.concurrency.cluster_models
import segbridge.storage.diff_models
import segbridge.storage.webhook_models
from segbridge.storage.db import Database
from segbridge.storage.models import Base

assert segbridge.storage.webhook_models and segbridge.storage.diff_models
assert segbridge.alerts.models  # the models of every package, as a running server has them


def test_migrated_database_matches_the_models(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        db.migrate()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "compare_type": False, "include_name": _ours})
            differences = compare_metadata(context, Base.metadata)
    finally:
        db.dispose()
    assert differences == []


def _ours(name: str | None, kind: str, _parents: object) -> bool:
    """segbridge's own tables: procrastinate's (the job queue, PostgreSQL) are its schema."""
    return not (kind == "table" and name is not None and name.startswith("procrastinate_"))


def test_admins_of_an_older_database_keep_their_rights_after_the_roles_migration(
        empty_database_url: str) -> None:
    """0004 turns users.is_admin into roles: admins stay admins, the first admin becomes the
    instance's administrator, everyone else can manage (what they could do before)."""
    from alembic import command
    from sqlalchemy import text

    db = Database(empty_database_url)
    try:
        with db.engine.begin() as connection:
            config = alembic_on(connection, empty_database_url)
            command.upgrade(config, "0003")
            connection.execute(text("INSERT INTO accounts (id, name, created_at) "
                                    "VALUES ('acc_1', 'Default', '2026-01-01')"))
            for user_id, email, admin, created in (
                    ("usr_1", "first@x.example", True, "2026-01-01"),
                    ("usr_2", "second@x.example", True, "2026-02-01"),
                    ("usr_3", "member@x.example", False, "2026-03-01")):
                connection.execute(text(
                    "INSERT INTO users (id, account_id, email, is_admin, created_at) "
                    "VALUES (:id, 'acc_1', :email, :admin, :created)"),
                    {"id": user_id, "email": email, "admin": admin, "created": created})
        db.migrate()
        with db.engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT email, role, is_instance_admin FROM users ORDER BY email")).all()
    finally:
        db.dispose()
    assert [tuple(row) for row in rows] == [("first@x.example", "admin", True),
                                            ("member@x.example", "manage", False),
                                            ("second@x.example", "admin", False)]


def test_the_rows_of_a_snapshot_stay_through_0012_without_their_foreign_keys(
        empty_database_url: str) -> None:
    """0012 drops the diff rows' foreign keys (a check per row written): every row stays,
    SQLite's tables stay WITHOUT ROWID (24 bytes a key, not 40)."""
    from alembic import command
    from sqlalchemy import text

    db = Database(empty_database_url)
    try:
        with db.engine.begin() as connection:
            config = alembic_on(connection, empty_database_url)
            command.upgrade(config, "0011")
            _a_snapshot_at_0011(connection)
        db.migrate()
        with db.engine.connect() as connection:
            counts = {table: connection.execute(text(
                f"SELECT COUNT(*) FROM {table}")).scalar_one()
                for table in ("diff_entries", "diff_staged", "diff_keys", "diff_gone")}
            keys = {table: inspect(connection).get_foreign_keys(table) for table in counts}
            tables = "".join(connection.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'diff_entries'")).scalars()) \
                if connection.dialect.name == "sqlite" else "WITHOUT ROWID"
    finally:
        db.dispose()
    assert counts == {"diff_entries": 2, "diff_staged": 1, "diff_keys": 1, "diff_gone": 1}
    assert keys == {table: [] for table in counts}
    assert "WITHOUT ROWID" in tables


def test_0012_goes_back_with_rows_whose_snapshot_is_gone(empty_database_url: str) -> None:
    """Without the foreign keys a row can outlive its snapshot; going back to 0011 drops such
    rows before it makes the keys again."""
    from alembic import command
    from sqlalchemy import text

    db = Database(empty_database_url)
    try:
        db.migrate()
        with db.engine.begin() as connection:
            _a_snapshot_at_0011(connection)
            connection.execute(text("INSERT INTO diff_entries VALUES (99, 1, 1)"))  # orphan
            config = alembic_on(connection, empty_database_url)
            command.downgrade(config, "0011")
            kept = connection.execute(text(
                "SELECT snapshot_id, key_hash FROM diff_entries ORDER BY key_hash")).all()
    finally:
        db.dispose()
    assert [tuple(row) for row in kept] == [(1, 7), (1, 8)]


def _a_snapshot_at_0011(connection: Connection) -> None:
    from sqlalchemy import text

    for statement in (
            "INSERT INTO accounts (id, name, created_at) VALUES ('acc_1', 'A', '2026-01-01')",
            "INSERT INTO integrations (id, account_id, name, name_key, created_at) "
            "VALUES ('int_1', 'acc_1', 'I', 'i', '2026-01-01')",
            "INSERT INTO flows (id, account_id, integration_id, name, name_key, definition, "
            "enabled, created_at, updated_at) VALUES ('flw_1', 'acc_1', 'int_1', 'F', 'f', "
            "'{}', false, '2026-01-01', '2026-01-01')",
            "INSERT INTO diff_snapshots (id, flow_id, import_name, created_at) "
            "VALUES (1, 'flw_1', 'Orders', '2026-01-01')",
            "INSERT INTO diff_entries VALUES (1, 7, 70), (1, 8, 80)",
            "INSERT INTO diff_staged (snapshot_id, position, key_hash, call_hash) "
            "VALUES (1, 0, 9, 90)",
            "INSERT INTO diff_keys VALUES (1, 7, 'x')",
            "INSERT INTO diff_gone (snapshot_id, key_hash, call_hash) VALUES (1, 8, 80)"):
        connection.execute(text(statement))


def test_each_test_starts_from_a_copy_at_the_latest_migration(database_url: str) -> None:
    """The tests' databases are copies of one template migrated per test run (see
    tests/support/databases.py): at head already, so the runtime's migrate() is a no-op."""
    from alembic.script import ScriptDirectory

    from segbridge.storage.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            tables = set(inspect(connection).get_table_names())
    finally:
        db.dispose()
    assert head is not None and current == head
    assert tables >= {table.name for table in Base.metadata.sorted_tables}


def test_a_process_started_on_a_database_at_head_does_not_load_alembic(
        database_url: str) -> None:
    """Every process migrates at start; at head that is one query (Alembic's modules cost
    about 10 MB in each process). HEAD_REVISION must follow the migrations."""
    import subprocess
    import sys

    from alembic.script import ScriptDirectory

    from segbridge.storage.db import HEAD_REVISION, alembic_config

    assert ScriptDirectory.from_config(alembic_config(database_url)).get_current_head() == \
        HEAD_REVISION
    started = subprocess.run([sys.executable, "-c", (
        "import sys\n"
        "from segbridge.storage.db import Database\n"
        f"db = Database({database_url!r})\n"
        "db.migrate()\n"
        "print(db.revision(), 'alembic' in sys.modules)\n")],
        capture_output=True, text=True, check=True, timeout=60)
    assert started.stdout.split() == [HEAD_REVISION, "False"]


def alembic_on(connection: Connection, url: str) -> Config:
    """Alembic's configuration for ``url``, running its commands on ``connection``."""
    from segbridge.storage.db import alembic_config

    config = alembic_config(url)
    config.attributes["connection"] = connection
    return config

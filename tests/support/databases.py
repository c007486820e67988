"""Databases for tests: a SQLite file, or a fresh PostgreSQL database dropped afterwards.

Migrating takes most of a small test's time, so a test run migrates once per database kind
into a template (a SQLite file; a PostgreSQL database) and each test starts from a copy of it
(a file copy; ``CREATE DATABASE ... TEMPLATE``). ``build_runtime`` still calls ``migrate()``,
a no-op on the copy (Alembic's version table says it is at head). tests/integration/
test_migrations.py runs the migrations from an empty database."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from segbridge.storage.db import Database

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SQLITE_NAME = "segbridge.sqlite3"


@contextmanager
def postgres_database(template: str | None = None) -> Iterator[str]:
    """A new database (a copy of `template` when given), dropped afterwards."""
    name = f"segbridge_test_{uuid.uuid4().hex[:12]}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copy_of}')
    try:
        yield postgres_url(name)
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def migrated_postgres_template() -> Iterator[str]:
    """A migrated database to copy, by name. No connection to it stays open: PostgreSQL
    copies a template only while nobody is connected to it."""
    with postgres_database() as url:
        migrate(url)
        yield url.rsplit("/", 1)[1]


def postgres_url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / SQLITE_NAME}"


def migrated_sqlite_template(directory: Path) -> Path:
    """A migrated SQLite file to copy."""
    migrate(sqlite_url(directory))
    return directory / SQLITE_NAME


def sqlite_copy(template: Path, directory: Path) -> str:
    """The URL of a copy of `template` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, directory / SQLITE_NAME)
    return sqlite_url(directory)


def migrate(url: str) -> None:
    db = Database(url)
    try:
        db.migrate()
    finally:
        db.dispose()  # for SQLite: the last connection closed folds the WAL into the file

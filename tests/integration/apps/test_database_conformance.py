"""Database passes the application conformance kit, against the real PostgreSQL and MariaDB
on loopback, a port with nothing listening, a ``.invalid`` host and a socket that never
answers, and against SQLite files.

PostgreSQL here trusts every loopback connection, so it never checks a password: its
"who we are" failure is a role that does not exist. MariaDB checks passwords: there it is a
real user given the wrong password. libpq waits at least 2 s before it calls a connection
timed out, so PostgreSQL's timeout case pings with 2 s; MariaDB's with the kit's 0.3 s.
"""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa

from segbridge.apps.base import ConnectionConfig
from segbridge.apps.database.app import DatabaseApplication
from segbridge.core.secrets import Secret
from tests.kit import ApplicationConformance, Case, Expect, ExportSample, Provoked
from tests.support.receivers import silent_server
from tests.support.servers import unused_port

PASSWORD = "Kit-s3cret/pass%word"  # URL-special characters on purpose
NO_SUCH_HOST = "segbridge-kit-no-such-host.invalid"
MARIADB_ROOT = "mysql+pymysql://root@127.0.0.1:3306/test"
LIBPQ_SHORTEST_TIMEOUT = 2.0
SQLITE_IS_A_FILE = "a SQLite database is a file on this machine: no address to reach"


def database_at(url: str, password: str = PASSWORD) -> ConnectionConfig:
    return ConnectionConfig({"url": url}, {"password": Secret(password)})


def no_such(thing: str) -> str:
    return f"kit_no_such_{thing}_{uuid.uuid4().hex[:8]}"


@contextmanager
def silent_port() -> Iterator[int]:
    with silent_server() as url:
        yield int(url.rsplit(":", 1)[1])


@contextmanager
def mariadb_user() -> Iterator[str]:
    """A MariaDB user whose password is ``PASSWORD``, dropped afterwards. It may read every
    database, so that one that does not exist is "unknown", not "access denied"."""
    name = f"kit_{uuid.uuid4().hex[:10]}"
    escaped = PASSWORD.replace("'", "''").replace("%", "%%")  # driver SQL: % doubled
    engine = sa.create_engine(MARIADB_ROOT)
    try:
        with engine.begin() as root:
            for host in ("localhost", "127.0.0.1"):
                root.exec_driver_sql(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY '{escaped}'")
                root.exec_driver_sql(f"GRANT SELECT ON *.* TO '{name}'@'{host}'")
        yield name
    finally:
        with engine.begin() as root:
            for host in ("localhost", "127.0.0.1"):
                root.exec_driver_sql(f"DROP USER IF EXISTS '{name}'@'{host}'")
        engine.dispose()


@contextmanager
def kit_table(admin_url: str) -> Iterator[str]:
    """A table of a few rows (NULLs, text beyond ASCII, floats, times), dropped afterwards.
    ``add_rows`` puts more after them."""
    name = no_such("table")
    engine = sa.create_engine(admin_url)
    table = sa.Table(name, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", sa.String(40)), sa.Column("score", sa.Float),
                     sa.Column("seen", sa.DateTime), sa.Column("note", sa.Text))
    try:
        table.create(engine)
        add_rows(engine, table, range(1, 9))
        yield name
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()


def add_rows(engine: sa.Engine, table: sa.Table, ids: range) -> None:
    with engine.begin() as connection:
        connection.execute(table.insert(), [
            {"id": n, "name": f"Zoë {n}" if n % 3 else None, "score": n / 4,
             "seen": datetime(2026, 1, n % 28 + 1, 12, n % 60), "note": "x" * n} for n in ids])


def more_rows(admin_url: str, name: str) -> None:
    """Rows after the ones an incremental run started with (a resumed run must not see them)."""
    engine = sa.create_engine(admin_url)
    try:
        table = sa.Table(name, sa.MetaData(), autoload_with=engine)
        add_rows(engine, table, range(100, 104))
    finally:
        engine.dispose()


class DatabaseConformance(ApplicationConformance):
    """What the database servers share; each names its scheme, its admin URL and how a user
    is refused (SQLite, a file, overrides the connection cases)."""

    application = DatabaseApplication()
    scheme: ClassVar[str]
    user: ClassVar[str]
    port: ClassVar[int]
    admin_url: ClassVar[str]
    timeout: ClassVar[float] = 0.3
    export_samples = ("query", "incremental")
    failing_exports = ("missing_table", "unreachable")
    expected: ClassVar = {
        Case.REFUSED: Expect("refused"),
        Case.DNS: Expect("dns"),
        Case.TIMEOUT: Expect("timeout"),
        Case.UNAUTHORIZED: Expect("auth"),
        Case.NOT_FOUND: Expect("unknown_database"),
    }

    def url(self, host: str, database: str, user: str | None = None) -> str:
        return f"{self.scheme}://{user or self.user}@{host}/{database}"

    @contextmanager
    def provoke(self, case: Case) -> Iterator[Provoked]:
        if case is Case.OK:
            yield from self.ok()
        elif case is Case.REFUSED:
            address = f"127.0.0.1:{unused_port()}"
            yield Provoked(database_at(self.url(address, "test")), mentions=(address,))
        elif case is Case.DNS:
            yield Provoked(database_at(self.url(NO_SUCH_HOST, "test")),
                           mentions=(NO_SUCH_HOST,))
        elif case is Case.TIMEOUT:
            with silent_port() as port:
                yield Provoked(database_at(self.url(f"127.0.0.1:{port}", "test")),
                               timeout=self.timeout, mentions=(f"127.0.0.1:{port}",))
        elif case is Case.UNAUTHORIZED:
            yield from self.refused_user()
        else:
            yield from self.missing_database()

    def ok(self) -> Iterator[Provoked]:
        yield Provoked(database_at(self.url(f"127.0.0.1:{self.port}", "test")))

    def missing_database(self) -> Iterator[Provoked]:
        name = no_such("db")
        yield Provoked(database_at(self.url(f"127.0.0.1:{self.port}", name)), mentions=(name,))

    def refused_user(self) -> Iterator[Provoked]:
        raise NotImplementedError

    def admin(self, folder: Path) -> str:
        """The URL the kit creates its tables with."""
        return self.admin_url

    @contextmanager
    def reader(self, folder: Path) -> Iterator[ConnectionConfig]:
        """The connection an export reads with."""
        yield database_at(self.url(f"127.0.0.1:{self.port}", "test"))

    @contextmanager
    def export_sample(self, name: str, folder: Path) -> Iterator[ExportSample]:
        if name == "unreachable":
            refused = database_at(self.url(f"127.0.0.1:{unused_port()}", "test"))
            yield ExportSample({"type": "database", "query": "SELECT 1"}, refused,
                               fails="refused")
            return
        if name == "missing_file":
            yield ExportSample({"type": "database", "query": "SELECT 1"},
                               database_at(f"sqlite:///{folder / 'missing.db'}"),
                               fails="unknown_database")
            return
        admin = self.admin(folder)
        with kit_table(admin) as table, self.reader(folder) as connection:
            query = f"SELECT * FROM {table} ORDER BY id"
            if name == "missing_table":
                yield ExportSample({"type": "database", "query": f"SELECT * FROM {table}_x"},
                                   connection, fails="query")
            elif name == "query":
                yield ExportSample({"type": "database", "query": query}, connection)
            else:
                yield ExportSample(
                    {"type": "database", "query": query, "cursor": {"column": "id"}},
                    connection, saved_cursor={"column": "id", "value": 2},
                    between=lambda: more_rows(admin, table))


@pytest.mark.postgres
class TestPostgresqlConformance(DatabaseConformance):
    scheme = "postgresql+psycopg"
    user = "postgres"
    port = 5432
    admin_url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    timeout = LIBPQ_SHORTEST_TIMEOUT

    def refused_user(self) -> Iterator[Provoked]:
        role = no_such("role")
        yield Provoked(database_at(self.url("127.0.0.1:5432", "test", role)), mentions=(role,))


@pytest.mark.mariadb
class TestMariadbConformance(DatabaseConformance):
    scheme = "mysql+pymysql"
    user = "root"
    port = 3306
    admin_url = MARIADB_ROOT

    @contextmanager
    def reader(self, folder: Path) -> Iterator[ConnectionConfig]:
        with mariadb_user() as name:
            yield database_at(self.url("127.0.0.1:3306", "test", name))

    def ok(self) -> Iterator[Provoked]:
        with mariadb_user() as name:
            yield Provoked(database_at(self.url("127.0.0.1:3306", "test", name)))

    def refused_user(self) -> Iterator[Provoked]:
        with mariadb_user() as name:
            yield Provoked(database_at(self.url("127.0.0.1:3306", "test", name),
                                       "wrong-" + PASSWORD), mentions=(name,))

    def missing_database(self) -> Iterator[Provoked]:
        database = no_such("db")
        with mariadb_user() as name:
            yield Provoked(database_at(self.url("127.0.0.1:3306", database, name)),
                           mentions=(database,))


class TestSqliteConformance(DatabaseConformance):
    """A SQLite file: no address to reach and no user, so only ok and 404 apply. It needs no
    password; one is given all the same, to check it shows nowhere."""

    expected: ClassVar = {Case.NOT_FOUND: Expect("unknown_database")}
    not_applicable: ClassVar = {
        Case.REFUSED: SQLITE_IS_A_FILE, Case.DNS: SQLITE_IS_A_FILE,
        Case.TIMEOUT: SQLITE_IS_A_FILE, Case.UNAUTHORIZED: "SQLite has no users or passwords",
    }
    failing_exports = ("missing_table", "missing_file")

    @contextmanager
    def provoke(self, case: Case) -> Iterator[Provoked]:
        with tempfile.TemporaryDirectory(prefix="kit-sqlite-") as folder:
            path = Path(folder) / ("kit.db" if case is Case.OK else "missing.db")
            if case is Case.OK:
                sqlite3.connect(path).close()
            yield Provoked(database_at(f"sqlite:///{path}"),
                           mentions=() if case is Case.OK else (str(path),))

    def admin(self, folder: Path) -> str:
        return f"sqlite:///{folder / 'kit.db'}"

    @contextmanager
    def reader(self, folder: Path) -> Iterator[ConnectionConfig]:
        yield database_at(self.admin(folder))

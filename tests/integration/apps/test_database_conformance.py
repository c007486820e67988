"""Database passes the application conformance kit, against the real PostgreSQL and MariaDB
on loopback, a port with nothing listening, a ``.invalid`` host and a socket that never
answers.

PostgreSQL here trusts every loopback connection, so it never checks a password: its
"who we are" failure is a role that does not exist. MariaDB checks passwords: there it is a
real user given the wrong password. libpq waits at least 2 s before it calls a connection
timed out, so PostgreSQL's timeout case pings with 2 s; MariaDB's with the kit's 0.3 s.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import pytest
import sqlalchemy as sa

from segbridge.apps.base import ConnectionConfig
from segbridge.apps.database.app import DatabaseApplication
from segbridge.core.secrets import Secret
from tests.kit import ApplicationConformance, Case, Expect, Provoked
from tests.support.receivers import silent_server
from tests.support.servers import unused_port

PASSWORD = "Kit-s3cret/pass%word"  # URL-special characters on purpose
NO_SUCH_HOST = "segbridge-kit-no-such-host.invalid"
MARIADB_ROOT = "mysql+pymysql://root@127.0.0.1:3306/test"
LIBPQ_SHORTEST_TIMEOUT = 2.0


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


class DatabaseConformance(ApplicationConformance):
    """What both servers share; each subclass names its scheme and its auth failure."""

    application = DatabaseApplication()
    scheme: ClassVar[str]
    user: ClassVar[str]
    port: ClassVar[int]
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

    timeout: ClassVar[float] = 0.3

    def ok(self) -> Iterator[Provoked]:
        yield Provoked(database_at(self.url(f"127.0.0.1:{self.port}", "test")))

    def missing_database(self) -> Iterator[Provoked]:
        name = no_such("db")
        yield Provoked(database_at(self.url(f"127.0.0.1:{self.port}", name)), mentions=(name,))

    def refused_user(self) -> Iterator[Provoked]:
        raise NotImplementedError


@pytest.mark.postgres
class TestPostgresqlConformance(DatabaseConformance):
    scheme = "postgresql+psycopg"
    user = "postgres"
    port = 5432
    timeout = LIBPQ_SHORTEST_TIMEOUT

    def refused_user(self) -> Iterator[Provoked]:
        role = no_such("role")
        yield Provoked(database_at(self.url("127.0.0.1:5432", "test", role)), mentions=(role,))


@pytest.mark.mariadb
class TestMariadbConformance(DatabaseConformance):
    scheme = "mysql+pymysql"
    user = "root"
    port = 3306

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

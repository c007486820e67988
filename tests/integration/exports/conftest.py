"""Real databases for the export tests: a SQLite file, PostgreSQL and MariaDB on loopback.

Every test gets its own table names (a random suffix) and drops them afterwards, so parallel
runs do not collide. A server that cannot be reached skips its tests (they run here).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.integration.exports.dbs import Db

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"


def _reachable(url: str) -> Engine:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.skip(f"{url.split('://')[0]} is unreachable: {exc.orig}")
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mariadb", marks=pytest.mark.mariadb)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    yield from _db(request.param, tmp_path)


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Db]:
    yield from _db("postgresql", tmp_path)


@pytest.fixture
def mariadb(tmp_path: Path) -> Iterator[Db]:
    yield from _db("mariadb", tmp_path)


def _db(kind: str, tmp_path: Path) -> Iterator[Db]:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'export.db'}"
        engine = sa.create_engine(url)
        with engine.connect():  # creates the file
            pass
    else:
        url = POSTGRES_URL if kind == "postgresql" else MARIADB_URL
        engine = _reachable(url)
    db = Db(kind, url, engine)
    try:
        yield db
    finally:
        db.drop_tables()
        engine.dispose()


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a timeout)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        sock.close()

"""Engines for the Database application: the password injected at the last moment, timeouts
per driver, SQLite and DuckDB files opened read-only, no pool (one connection per ping or
export). A DuckDB engine is locked down to the access policy's file roots and to single
SELECT statements (``duckdb_guard``); without a policy it reads its own file only.

Driver libraries are imported by SQLAlchemy only when an engine of that driver is created.
"""

from __future__ import annotations

import math
import os
import sqlite3
from typing import Any
from urllib.parse import quote, quote_plus

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from segbridge.apps.database.duckdb_guard import (
    PathCheck,
    allowed_places,
    connect_args,
    lock_down,
    no_files,
)
from segbridge.apps.database.url import with_password
from segbridge.core.access import AccessPolicy
from segbridge.core.secrets import MASK, Secret

APPLICATION_NAME = "segbridge"


def create_database_engine(url: URL, password: Secret | None, *, connect_timeout: float,
                           read_timeout: float | None = None,
                           policy: AccessPolicy | None = None) -> Engine:
    """An engine for a checked URL. ``read_timeout`` bounds each wait for the server (the
    ping); exports leave it unset, a long query may take its time. ``policy``: the files a
    DuckDB query may read (its roots, less segbridge's own data)."""
    if url.drivername == "duckdb":
        return _duckdb_engine(url, policy)
    target = _sqlite_read_only(url) if url.drivername == "sqlite" else url
    engine = create_engine(with_password(target, password), poolclass=NullPool,
                           connect_args=_connect_args(url, connect_timeout, read_timeout),
                           hide_parameters=True)
    if url.drivername == "sqlite":
        event.listen(engine, "connect", _reads_only)
    return engine


SQLITE_READS = frozenset({  # what a query on a SQLite source may do (the authorizer's codes)
    sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE})
SQLITE_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "table_list", "index_list",
                                 "index_info", "index_xinfo", "foreign_key_list",
                                 "data_version"})
SQLITE_SCHEMA = frozenset({"sqlite_master", "sqlite_schema"})  # a virtual table's cursor
# (json_each, pragma_table_info, FTS5...) asks for an update of the schema it never makes:
# the file is open read-only and writable_schema stays refused


def _reads_only(dbapi_connection: Any, _record: Any) -> None:
    """A SQLite source's connection authorizes reads only. The file is opened read-only, but
    ``VACUUM INTO '/any/path'`` wrote a copy of it anywhere the server may write (segbridge's
    home included) and ATTACH opened other files: both are refused (VACUUM INTO attaches its
    target first), as is every other statement but a SELECT."""
    dbapi_connection.set_authorizer(_authorize)


SQLITE_REFUSED_FUNCTIONS = frozenset({  # functions a read-only query still must not call
    "fts3_tokenizer",  # returns a pointer into SQLite and installs a tokenizer at any address:
    # a tester crashed the server with it from a preview (the published way to run code)
    "load_extension"})


def _authorize(action: int, first: str | None, second: str | None, _database: str | None,
               _trigger: str | None) -> int:
    if action == sqlite3.SQLITE_FUNCTION and (second or "").lower() in SQLITE_REFUSED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action in SQLITE_READS or \
            (action == sqlite3.SQLITE_PRAGMA and (first or "").lower() in SQLITE_READ_PRAGMAS) \
            or (action == sqlite3.SQLITE_UPDATE and (first or "").lower() in SQLITE_SCHEMA):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _connect_args(url: URL, connect_timeout: float,
                  read_timeout: float | None) -> dict[str, Any]:
    if url.drivername == "postgresql+psycopg":  # (not the server user's ~/.pgpass: its
        # passwords are the operator's, not the connection's)
        args: dict[str, Any] = {"connect_timeout": max(2, math.ceil(connect_timeout)),
                                "passfile": os.devnull}
        if "application_name" not in url.query:
            args["application_name"] = APPLICATION_NAME
        return args
    if url.drivername == "mysql+pymysql":  # never a file to the server (LOAD DATA LOCAL)
        args = {"connect_timeout": connect_timeout, "local_infile": False}
        if read_timeout is not None:
            args["read_timeout"] = read_timeout
            args["write_timeout"] = read_timeout
        return args
    return {"timeout": connect_timeout}  # sqlite: how long to wait for a locked database


def _duckdb_engine(url: URL, policy: AccessPolicy | None) -> Engine:
    database = url.database if url.database and url.database != ":memory:" else None
    places = allowed_places(policy.file_roots if policy else (),
                            policy.protected if policy else (), database)
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args(database),
                           hide_parameters=True)
    return lock_down(engine, places, _path_check(policy) if policy else no_files)


def _path_check(policy: AccessPolicy) -> PathCheck:
    def check(path: str) -> None:
        policy.check_file(path, field="query")
    return check


def _sqlite_read_only(url: URL) -> URL:
    """sqlite:////srv/shop.db -> the same file through a read-only URI (never created)."""
    path = url.database or ""
    return url.set(database=f"file:{quote(path)}", query={**url.query, "mode": "ro",
                                                          "uri": "true"})


def scrub(text: str, password: Secret | None) -> str:
    """The text with the password (and its URL-encoded forms) masked."""
    if password is None or not password:
        return text
    secret = password.reveal()
    for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
        if form:
            text = text.replace(form, MASK)
    return text

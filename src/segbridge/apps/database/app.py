"""The Database application: settings, validation, Test connection (connect, SELECT 1) and
the export of a query's rows, all at once or incrementally on a cursor column."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import SQLAlchemyError

from segbridge.apps.base import (
    Capability,
    ConnectionConfig,
    ExportRequest,
    LookupRequest,
    OpenedExport,
    PingResult,
    SettingKind,
    SettingSpec,
)
from segbridge.apps.database.connect import create_database_engine
from segbridge.apps.database.diagnose import ASKED_FOR_A_FILE, asked_for_a_file, diagnose
from segbridge.apps.database.document import DATABASE_EXPORT_MODELS
from segbridge.apps.database.lookup import DatabaseLookup, lookup_problems
from segbridge.apps.database.source import open_database_export
from segbridge.apps.database.url import (
    DRIVERS,
    EXAMPLES,
    DatabaseUrlError,
    parse_database_url,
    public_url,
    targets_of,
    url_problems,
)
from segbridge.core.access import Targets
from segbridge.core.errors import FieldProblem
from segbridge.core.secrets import Secret

URL_HELP = (f"A SQLAlchemy URL without the password, e.g. {EXAMPLES}. Query parameters are "
            "passed to the driver (e.g. ?sslmode=require for PostgreSQL).")
HIDDEN_FIELD_HELP = (
    "The database user's password, encrypted with AES-256 and never shown again; "
    "re-enter it on every edit. Leave empty when the database needs none.")


class DatabaseApplication:
    """A SQL database (PostgreSQL, MySQL/MariaDB, SQLite): export the rows of a query, or
    look up a row for each record (a lookup step)."""

    key = "database"
    name = "Database"
    description = ("Export the rows of a SQL query from PostgreSQL, MySQL / MariaDB, SQLite or "
                   "DuckDB (also over Parquet and CSV files in the allowed folders), all at once "
                   "or incrementally on a cursor column.")
    capabilities = frozenset({Capability.PING, Capability.EXPORT, Capability.LOOKUP})
    export_models = DATABASE_EXPORT_MODELS
    export_kinds = frozenset(DATABASE_EXPORT_MODELS)
    settings: tuple[SettingSpec, ...] = (
        SettingSpec("url", "Database URL", SettingKind.TEXT, required=True, help=URL_HELP,
                    max_length=2000),
        SettingSpec("password", "Password", SettingKind.SECRET, help=HIDDEN_FIELD_HELP,
                    max_length=1000),
    )

    def validate(self, values: Mapping[str, str | None]) -> list[FieldProblem]:
        return [FieldProblem("settings.url", problem)
                for problem in url_problems(values.get("url"))]

    def targets(self, values: Mapping[str, str | None]) -> Targets:
        return targets_of(values.get("url"))

    def ping(self, config: ConnectionConfig, *, timeout: float) -> PingResult:
        try:
            url = parse_database_url(config.values.get("url") or "")
        except DatabaseUrlError as exc:
            return PingResult(ok=False, endpoint="", status=None, latency_ms=0.0,
                              message_id=None, cause="config", message=str(exc))
        return _ping(url, config.secrets.get("password"), timeout)

    def open_export(self, request: ExportRequest) -> OpenedExport:
        return open_database_export(request)

    def lookup_problems(self, lookup: Mapping[str, Any], field: str) -> list[FieldProblem]:
        return lookup_problems(lookup, field)

    def open_lookup(self, request: LookupRequest) -> DatabaseLookup:
        return DatabaseLookup(request)


def _ping(url: URL, password: Secret | None, timeout: float) -> PingResult:
    endpoint = public_url(url)
    engine = create_database_engine(url, password, connect_timeout=timeout,
                                    read_timeout=timeout)
    started = time.perf_counter()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1")).scalar_one()
            version = _version(connection)
    except (SQLAlchemyError, OSError) as exc:
        found = diagnose(exc, url, password, timeout=timeout)
        return PingResult(ok=False, endpoint=endpoint, status=None,
                          latency_ms=_since(started), message_id=None, cause=found.cause,
                          message=found.message)
    except RuntimeError as exc:
        if not asked_for_a_file(exc):
            raise
        return PingResult(ok=False, endpoint=endpoint, status=None,
                          latency_ms=_since(started), message_id=None, cause="driver",
                          message=ASKED_FOR_A_FILE)
    finally:
        engine.dispose()
    latency = _since(started)
    return PingResult(ok=True, endpoint=endpoint, status=None, latency_ms=latency,
                      message_id=None,
                      message=f"Connected to {version} and ran SELECT 1 in {latency:.0f} ms.")


def _version(connection: Connection) -> str:
    product = DRIVERS.get(connection.engine.url.drivername, "the database")
    info = connection.dialect.server_version_info
    if product == "MySQL / MariaDB":
        product = "MariaDB" if getattr(connection.dialect, "is_mariadb", False) else "MySQL"
    if not info:
        return product
    return f"{product} {'.'.join(str(part) for part in info)}"


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0

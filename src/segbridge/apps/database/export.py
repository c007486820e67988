"""Database exports: the rows of a query, streamed with a server-side cursor.

PostgreSQL uses a named cursor, MySQL/MariaDB an unbuffered SSCursor, SQLite its own stepping;
SQLAlchemy fetches ``fetch_size`` rows at a time (``stream_results``, ``yield_per``), so memory
does not grow with the result. Each run reads in a read-only transaction.

Without a cursor column the query runs as written (order it for resumable positions); with
one, it is wrapped::

    SELECT * FROM (<query>) AS segbridge_q WHERE col > :last AND col <= :upper ORDER BY col

``start_position`` is applied with OFFSET on the wrapped query (the database skips the rows);
an unwrapped query is read and the first rows are dropped unconverted, because wrapping it
would lose its ORDER BY on MySQL/MariaDB.

Each row is held to the caps (``limits``): a query with more columns than the field cap fails
the export; a row larger than the size cap, or whose json values nest too deep or hold too many
fields, is an error record (with an excerpt) and the rows after it go on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import suppress
from datetime import date
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine, Result
from sqlalchemy.exc import SQLAlchemyError

from segbridge.apps.database.connect import create_database_engine
from segbridge.apps.database.convert import convert_row
from segbridge.apps.database.cursor import (
    CursorBounds,
    check_column,
    cutoff,
    max_sql,
    probe_sql,
    range_sql,
)
from segbridge.apps.database.diagnose import ASKED_FOR_A_FILE, asked_for_a_file, diagnose
from segbridge.apps.database.url import DatabaseUrlError, parse_database_url, public_url
from segbridge.apps.files.reading import clip, dedupe
from segbridge.core.access import AccessPolicy
from segbridge.core.secrets import Secret
from segbridge.exports.contracts import SourceRecord
from segbridge.exports.errors import ExportError, ExportUnavailable
from segbridge.exports.limits import RecordLimits, excerpt

CONNECT_TIMEOUT = 30.0
MYSQL_NET_WRITE_TIMEOUT = 3600  # seconds the server waits while the engine is busy sending
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")  # what SQLAlchemy's text() takes for a parameter


def clean_query(query: str) -> str:
    """The user's query without trailing semicolons, with ':name' kept literal for text()."""
    if not isinstance(query, str) or not query.strip():
        raise ExportError("Write the SELECT query to export.", cause="config")
    return _BIND.sub(r"\\:\1", query.strip().rstrip(";").rstrip())


class DatabaseExport:
    """The rows of ``query`` as records of column name -> converted value ("row 1", ...)."""

    def __init__(self, engine_or_url: Engine | URL | str, password: Secret | None, query: str,
                 *, cursor_column: str | None = None, last_cursor: Any = None,
                 upper_bound: Any = None, lag_seconds: int | None = None,
                 fetch_size: int = 5000, connect_timeout: float = CONNECT_TIMEOUT,
                 limits: RecordLimits | None = None,
                 policy: AccessPolicy | None = None) -> None:
        self._engine, self.url = _target(engine_or_url)
        self.limits = limits or RecordLimits()
        self._password = password
        self._query = clean_query(query)
        self.cursor_column = check_column(cursor_column) if cursor_column is not None else None
        if lag_seconds is not None and (not isinstance(lag_seconds, int) or lag_seconds < 0):
            raise ExportError("lag_seconds is a whole number of seconds, 0 or more.",
                              cause="config")
        self.lag_seconds = lag_seconds or None
        self.fetch_size = max(1, int(fetch_size))
        self.connect_timeout = connect_timeout
        self._bounds = CursorBounds(last_cursor, upper_bound) if upper_bound is not None \
            else None
        self._last = last_cursor
        self._policy = policy  # the files a DuckDB query may read (its roots)

    def __repr__(self) -> str:
        cursor = f", cursor_column={self.cursor_column!r}" if self.cursor_column else ""
        return f"DatabaseExport({public_url(self.url)!r}{cursor})"

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    def bounds(self) -> CursorBounds | None:
        """The cursor range of this run, fixed on first use (None without a cursor column)."""
        if self.cursor_column is None:
            return None
        if self._bounds is None:
            self._bounds = self._run(self._compute_bounds)
        return self._bounds

    def read_share(self) -> float | None:
        """Unknown: counting a query's rows would run it twice."""
        return None

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        bounds = self.bounds()
        if bounds is not None and bounds.empty:
            return
        engine = self._connectable()
        try:
            yield from self._stream(engine, bounds, max(0, start_position))
        finally:
            if self._engine is None:
                engine.dispose()

    def _stream(self, engine: Engine, bounds: CursorBounds | None,
                start: int) -> Iterator[SourceRecord]:
        phase = "connect"
        position = start
        try:
            with engine.connect() as connection:
                phase = "query"
                self._read_only(connection)
                result = self._execute(connection, bounds, start)
                keys = result.keys()
                names = self._checked(dedupe([str(key) for key in keys]))
                at = _column_index(names, self.cursor_column)
                record = self._record
                position = start if bounds is not None else 0
                try:
                    for partition in result.partitions():
                        for row in partition:
                            if position >= start:
                                yield record(position, names, row, at)
                            position += 1
                except GeneratorExit:  # the consumer stopped early
                    if self.dialect == "mysql":
                        _abandon_unbuffered(connection)
                    raise
                finally:  # the server-side cursor, also when stopped early or failed
                    with suppress(SQLAlchemyError):
                        result.close()
        except SQLAlchemyError as exc:
            raise self._error(exc, phase) from None
        except RecursionError:  # the driver decoding a json value (PostgreSQL), not a row yet
            raise ExportError(
                f"A json value in the results (from row {position + 1} on) is nested too deep "
                "for the database driver to read (about 1,000 levels; a record may have "
                f"{self.limits.max_depth}: SEGBRIDGE_RECORD_MAX_DEPTH). Leave that column out "
                "of the query, or select it as text (column::text).", cause="query") from None
        except RuntimeError as exc:  # (after RecursionError, one of them)
            if not asked_for_a_file(exc):
                raise
            raise ExportError(ASKED_FOR_A_FILE, cause="driver") from None

    def _checked(self, names: list[str]) -> list[str]:
        """The column names, unless there are more than a record may have fields."""
        problem = self.limits.too_many_columns("The query returns", len(names),
                                               "Select fewer columns.")
        if problem:
            raise ExportError(problem, cause="config")
        return names

    def _record(self, position: int, names: list[str], row: Sequence[Any],
                at: int | None) -> SourceRecord:
        """A row as a record, or an error record when it breaks a cap."""
        ref = f"row {position + 1}"
        cursor = row[at] if at is not None else None
        limits = self.limits
        try:
            data = convert_row(names, row)
        except RecursionError:  # a json value nested past what Python converts
            return SourceRecord(position, ref, None, cursor=cursor,
                                error=f"{ref}: {limits.too_deep(limits.max_depth, at_least=True)}")
        try:
            text: bytes | None = orjson.dumps(data)
        except orjson.JSONEncodeError:  # nested deeper than orjson writes
            text = None
        problem = None if text is not None and limits.line_fits(text) \
            else limits.shape_problem(data)
        if problem is None and text is not None and len(text) > limits.max_bytes:
            problem = limits.too_large(len(text))
        if problem is None:
            return SourceRecord(position, ref, data, cursor=cursor)
        return SourceRecord(position, ref, None, cursor=cursor, error=f"{ref}: {problem}",
                            raw=clip(excerpt(data), len(text) if text is not None else None))

    def _execute(self, connection: Connection, bounds: CursorBounds | None,
                 start: int) -> Result[Any]:
        if bounds is None:
            streaming = connection.execution_options(stream_results=True)
            return streaming.execute(text(self._query)).yield_per(self.fetch_size)
        column = self._quoted_column(connection)
        streaming = connection.execution_options(stream_results=True)
        params: dict[str, Any] = {"upper": bounds.upper}
        conditions = [f"{column} <= :upper"]
        if bounds.last is not None:
            conditions.insert(0, f"{column} > :last")
            params["last"] = bounds.last
        sql = range_sql(self._query, column, conditions, self.dialect, start)
        return streaming.execute(text(sql), params).yield_per(self.fetch_size)

    def _compute_bounds(self, connection: Connection) -> CursorBounds:
        column = self._quoted_column(connection)
        last = self._last
        conditions = [f"{column} > :last"] if last is not None else []
        params = {"last": last} if last is not None else {}
        top = connection.execute(text(max_sql(self._query, column, conditions)),
                                 params).scalar()
        if top is None:
            return CursorBounds(last, last)
        if self.lag_seconds is None:
            return CursorBounds(last, top)
        self._check_lag_type(top)
        conditions.append(cutoff(self.dialect, column, self.lag_seconds))
        upper = connection.execute(text(max_sql(self._query, column, conditions)),
                                   params).scalar()
        return CursorBounds(last, upper if upper is not None else last)

    def _check_lag_type(self, top: Any) -> None:
        if isinstance(top, date) or (isinstance(top, str) and self.dialect == "sqlite"):
            return
        raise ExportError(f"lag_seconds needs a date/time cursor column; {self.cursor_column} "
                          f"holds {type(top).__name__} values. Remove the lag for a numeric "
                          "cursor.", cause="config")

    def _quoted_column(self, connection: Connection) -> str:
        """The cursor column as the query names it, quoted; an ExportError when it has none
        (checked first: SQLite would take an unknown quoted name for a string)."""
        assert self.cursor_column is not None
        keys = connection.execute(text(probe_sql(self._query))).keys()
        names = [str(key) for key in keys]
        at = _column_index(names, self.cursor_column)
        if at is None:
            raise ExportError(f"The query has no column {self.cursor_column}; its columns are "
                              f"{', '.join(names)}.", cause="config")
        return str(connection.dialect.identifier_preparer.quote_identifier(names[at]))

    def _read_only(self, connection: Connection) -> None:
        if self.dialect == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        elif self.dialect == "mysql":
            if self._engine is None:  # our own connection: session settings end with it
                connection.exec_driver_sql(
                    f"SET SESSION net_write_timeout = {MYSQL_NET_WRITE_TIMEOUT}")
            connection.exec_driver_sql("START TRANSACTION READ ONLY")

    def _run(self, work: Any) -> Any:
        """Run ``work(connection)`` in a read-only transaction; errors made clear."""
        engine = self._connectable()
        phase = "connect"
        try:
            with engine.connect() as connection:
                phase = "query"
                self._read_only(connection)
                return work(connection)
        except SQLAlchemyError as exc:
            raise self._error(exc, phase) from None
        finally:
            if self._engine is None:
                engine.dispose()

    def _connectable(self) -> Engine:
        if self._engine is not None:
            return self._engine
        try:
            return create_database_engine(self.url, self._password,
                                          connect_timeout=self.connect_timeout,
                                          policy=self._policy)
        except SQLAlchemyError as exc:
            raise self._error(exc, "connect") from None

    def _error(self, exc: SQLAlchemyError, phase: str) -> ExportError | ExportUnavailable:
        found = diagnose(exc, self.url, self._password, timeout=self.connect_timeout)
        if found.unreachable:
            return ExportUnavailable(found.message, cause=found.cause)
        if phase == "query" and found.cause == "driver" and \
                found.detail.startswith(SQLITE_REFUSED):
            return ExportError("The query failed: segbridge runs only queries that read on "
                               "SQLite (a SELECT: no ATTACH, VACUUM, PRAGMA that changes "
                               "anything, nor a write). Write the export as a SELECT.",
                               cause="query")
        if phase == "query" and found.cause == "driver":
            return ExportError(f"The query failed: {found.detail.rstrip('. ')}. Check the "
                               "flow's query (run it in a database client as the connection's "
                               "user), then run the flow again.", cause="query")
        return ExportError(found.message, cause=found.cause)


SQLITE_REFUSED = ("not authorized", "authorization denied")  # its authorizer said no
# (``connect._reads_only``)


def _target(engine_or_url: Engine | URL | str) -> tuple[Engine | None, URL]:
    if isinstance(engine_or_url, Engine):
        return engine_or_url, engine_or_url.url
    try:
        return None, parse_database_url(str(engine_or_url) if isinstance(engine_or_url, str)
                                        else engine_or_url.render_as_string(hide_password=False))
    except DatabaseUrlError as exc:
        raise ExportError(str(exc), cause="config") from None


def _abandon_unbuffered(connection: Connection) -> None:
    """Drop a MySQL connection in the middle of an unbuffered result. Closing it normally
    would read every remaining row first (pymysql's SSCursor drains the result), minutes for
    a big table; instead the result is marked finished and the connection closed (the server
    stops the query when the client quits). Uses a pymysql internal, defensively."""
    try:
        raw = connection.connection.dbapi_connection
        result = getattr(raw, "_result", None)
        if result is not None and getattr(result, "unbuffered_active", False):
            result.unbuffered_active = False
    except Exception:  # noqa: S110 - best effort: the worst case is a slow close
        pass
    connection.invalidate()


def _column_index(names: list[str], column: str | None) -> int | None:
    if column is None:
        return None
    if column in names:
        return names.index(column)
    folded = [name.casefold() for name in names]
    return folded.index(column.casefold()) if column.casefold() in folded else None

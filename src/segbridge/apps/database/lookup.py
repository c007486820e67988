"""Database lookups: the row of a SQL query for each record's key, many keys per query.

A lookup step names its query's parameters and the record fields that give them
(``params: {customer_id: userId}``). Two forms:

- **batched** (``key_column`` given): the query has one parameter, used as ``IN :param``;
  the engine's batch of distinct keys is bound to it (an expanding parameter: one query per
  batch of up to ``BATCH_KEYS`` keys) and each row goes back to its key through the column
  ``key_column`` (compared as text, so a CSV's "42" finds the integer 42)::

      select id, plan, country from customers where id in :customer_id

- **per key** (no ``key_column``): any query and any number of parameters, run once per
  distinct key (the engine's cache keeps the answers)::

      select plan from prices where sku = :sku and region = :region

When a key has several rows, the first one counts. Each query runs in a read-only
transaction on one connection kept for the lookup's life (a run or a preview).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine, Result
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import TextClause

from segbridge.apps.base import LookupKey, LookupRequest, LookupRow
from segbridge.apps.database.connect import create_database_engine
from segbridge.apps.database.convert import convert_row
from segbridge.apps.database.diagnose import ASKED_FOR_A_FILE, asked_for_a_file, diagnose
from segbridge.apps.database.url import DatabaseUrlError, parse_database_url, targets_of
from segbridge.core.errors import FatalError, FieldProblem, RetriableError
from segbridge.core.secrets import Secret

BATCH_KEYS = 500  # keys bound to one IN (...): under every driver's parameter limit
CONNECT_TIMEOUT = 30.0
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")  # a parameter as SQLAlchemy's text() reads it
READ_ONLY_SESSION = {"postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                     "mysql": "SET SESSION TRANSACTION READ ONLY"}  # SQLite: opened read-only
_IN_PARAM = r"\bin\s*\(?\s*:{name}\b"


def query_parameters(query: str) -> list[str]:
    """The named parameters of a query, in order of first use."""
    return list(dict.fromkeys(_BIND.findall(query)))


def lookup_problems(lookup: Mapping[str, Any], field: str) -> list[FieldProblem]:
    """The query's parameters against the step's ``params`` and ``key_column``."""
    query = lookup.get("query")
    params = lookup.get("params")
    if not isinstance(query, str) or not query.strip() or not isinstance(params, Mapping):
        return []  # the step's own model says what to write
    used = query_parameters(query)
    problems = [FieldProblem(f"{field}.params", f"the query has no :{name}; use it in the "
                             "query or remove it") for name in params if name not in used]
    problems += [FieldProblem(f"{field}.query", f":{name} has no value; add {name}: <a "
                              "record field> to params") for name in used if name not in params]
    if lookup.get("key_column") is not None and not problems:
        problems += _batched_problems(query, used, field)
    return problems


def _batched_problems(query: str, used: list[str], field: str) -> list[FieldProblem]:
    if len(used) != 1:
        return [FieldProblem(f"{field}.key_column", "a batched lookup (key_column) takes one "
                             "parameter, used as 'where <column> in :<parameter>'; remove "
                             "key_column to run the query once per key")]
    if not re.search(_IN_PARAM.format(name=re.escape(used[0])), query, re.IGNORECASE):
        return [FieldProblem(f"{field}.query", f"a batched lookup (key_column) reads many "
                             f"keys at once: write 'where <column> in :{used[0]}'")]
    return []


class DatabaseLookup:
    """A lookup step's query, asked for many keys at once (see the module's docstring)."""

    def __init__(self, request: LookupRequest, *,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        url_text = str(request.connection.values.get("url") or "")
        request.policy.check_targets(targets_of(url_text, f"{request.field}.connection"))
        try:
            self.url = parse_database_url(url_text)
        except DatabaseUrlError as exc:
            raise FatalError(str(exc), cause="config") from None
        self._password: Secret | None = request.connection.secrets.get("password")
        self._policy = request.policy  # the files a DuckDB lookup query may read
        self._timeout = connect_timeout
        self.params = request.params
        query = str(request.lookup["query"]).strip().rstrip(";")
        key_column = request.lookup.get("key_column")
        self.key_column: str | None = str(key_column) if key_column else None
        self.batch_size = BATCH_KEYS if self.key_column else 50
        self._statement = self._prepared(query)
        self._engine: Engine | None = None
        self._connection: Connection | None = None

    def _prepared(self, query: str) -> TextClause:
        statement = text(query)
        if self.key_column is not None:
            statement = statement.bindparams(bindparam(self.params[0], expanding=True))
        return statement

    def find_many(self, keys: Sequence[LookupKey]) -> dict[LookupKey, LookupRow | None]:
        try:
            connection = self._connected()
            if self.key_column is not None:
                return self._batched(connection, keys)
            return {key: self._one(connection, key) for key in keys}
        except SQLAlchemyError as exc:
            self.close()  # a broken connection is not used again
            raise self._error(exc) from None
        except RuntimeError as exc:
            if not asked_for_a_file(exc):
                raise
            self.close()
            raise FatalError(ASKED_FOR_A_FILE, cause="driver") from None

    def _batched(self, connection: Connection, keys: Sequence[LookupKey]
                 ) -> dict[LookupKey, LookupRow | None]:
        assert self.key_column is not None
        found: dict[LookupKey, LookupRow | None] = dict.fromkeys(keys)
        by_text = {_as_text(key[0]): key for key in keys}
        result = connection.execute(self._statement, {self.params[0]: [k[0] for k in keys]})
        names = _names(result)
        at = _column(names, self.key_column)
        for row in result:
            key = by_text.get(_as_text(row[at]))
            if key is not None and found[key] is None:
                found[key] = convert_row(names, row)
        return found

    def _one(self, connection: Connection, key: LookupKey) -> LookupRow | None:
        result = connection.execute(self._statement, dict(zip(self.params, key, strict=True)))
        row = result.first()
        return None if row is None else convert_row(_names(result), row)

    def _connected(self) -> Connection:
        if self._connection is None:
            self._engine = create_database_engine(self.url, self._password,
                                                  connect_timeout=self._timeout,
                                                  policy=self._policy)
            self._connection = self._engine.connect()
            backend = self.url.get_backend_name()
            if backend in READ_ONLY_SESSION:
                self._connection.exec_driver_sql(READ_ONLY_SESSION[backend])
                self._connection.commit()
        else:
            self._connection.rollback()  # a fresh snapshot for each batch
        return self._connection

    def _error(self, exc: SQLAlchemyError) -> RetriableError | FatalError:
        found = diagnose(exc, self.url, self._password, timeout=self._timeout)
        if found.unreachable:
            return RetriableError(f"The lookup's database cannot be reached: {found.message}",
                                  cause=found.cause)
        if found.cause == "driver":
            return FatalError(f"The lookup's query failed: {found.detail.rstrip('. ')}. Check "
                              "the query (run it in a database client as the connection's "
                              "user), then run the flow again.", cause="query")
        return FatalError(found.message, cause=found.cause)

    def close(self) -> None:
        connection, engine = self._connection, self._engine
        self._connection = self._engine = None
        if connection is not None:
            with suppress(SQLAlchemyError):  # already broken: disposing the engine is enough
                connection.close()
        if engine is not None:
            engine.dispose()


def _column(names: list[str], column: str) -> int:
    if column in names:
        return names.index(column)
    folded = [name.casefold() for name in names]
    if column.casefold() in folded:
        return folded.index(column.casefold())
    raise FatalError(f"The lookup's query has no column {column} (its key_column); its "
                     f"columns are {', '.join(names)}. Select the key column too.",
                     cause="query")


def _as_text(value: Any) -> str:
    """Keys compared as text: a CSV's "42" and a database's 42 are the same customer."""
    return value if isinstance(value, str) else str(value)


def _names(result: Result[Any]) -> list[str]:
    return [str(name) for name in result.keys()]  # noqa: SIM118 - a Result, not a dict

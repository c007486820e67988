"""Incremental database exports: the cursor column, the bounds of a run, and their JSON form.

A run exports the rows with ``last < cursor <= upper``. ``upper`` is fixed when the run starts
(the greatest cursor value then, or, with a lag, the greatest one at least ``lag_seconds`` old
by the database's clock), so a resumed run sees the same rows. When the run succeeds, the
engine saves ``next_cursor_value(bounds)`` as the flow's new high-water mark; when it fails
it saves nothing, and the next run starts from the same ``last``.

Bounds go through JSON (the run's ``export_bounds``, the flow's ``cursor``): datetimes, dates,
times and Decimals are tagged so they come back as the same types.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, NamedTuple

from segbridge.exports.errors import ExportError

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
_TAGGED: dict[str, Any] = {"datetime": datetime.fromisoformat, "date": date.fromisoformat,
                           "time": time.fromisoformat, "decimal": Decimal}


class CursorBounds(NamedTuple):
    """The cursor range of one run: rows with ``last < cursor <= upper`` (``last`` None: from
    the start; ``upper`` None: nothing to export)."""

    last: Any
    upper: Any

    def to_json(self) -> dict[str, Any]:
        return {"last": encode_cursor_value(self.last), "upper": encode_cursor_value(self.upper)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CursorBounds:
        return cls(decode_cursor_value(data.get("last")), decode_cursor_value(data.get("upper")))

    @property
    def empty(self) -> bool:
        return self.upper is None or (self.last is not None and self.upper == self.last)


def next_cursor_value(bounds: CursorBounds) -> Any:
    """The high-water mark to save after a successful run with these bounds."""
    return bounds.upper if bounds.upper is not None else bounds.last


def encode_cursor_value(value: Any) -> Any:
    """A cursor value as JSON: numbers and strings as they are, other types tagged."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, time):
        return {"type": "time", "value": value.isoformat()}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    raise ExportError(f"A cursor column of type {type(value).__name__} is not supported; use "
                      "a number, a date/time or a text column.", cause="config")


def decode_cursor_value(data: Any) -> Any:
    if isinstance(data, dict):
        parse = _TAGGED.get(str(data.get("type")))
        if parse is None:
            raise ExportError(f"The saved cursor value {data!r} cannot be read; reset the "
                              "flow's cursor.", cause="config")
        return parse(data["value"])
    return data


def check_column(name: str) -> str:
    """The cursor column name, checked to be a plain identifier (no quotes, no SQL)."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise ExportError(f"The cursor column {name!r} is not a plain column name: use letters, "
                          "digits and _ (as the column is named in the query's output).",
                          cause="config")
    return name


def cutoff(dialect: str, column: str, lag_seconds: int) -> str:
    """SQL: the column is at least ``lag_seconds`` old by the database's clock."""
    lag = int(lag_seconds)
    if dialect == "postgresql":
        return f"{column} <= CURRENT_TIMESTAMP - INTERVAL '{lag} seconds'"
    if dialect == "mysql":
        return f"{column} <= CURRENT_TIMESTAMP - INTERVAL {lag} SECOND"
    return f"datetime({column}) <= datetime('now', '-{lag} seconds')"


# The SQL below is built from the user's own query (SQL by design, run read-only), a column
# name checked by check_column and quoted by the dialect, and integers; values are bound.


def range_sql(query: str, column: str, conditions: list[str], dialect: str, offset: int) -> str:
    """The rows of the run's cursor range, in cursor order, from ``offset`` on."""
    return (f"SELECT * FROM (\n{query}\n) AS segbridge_q WHERE {' AND '.join(conditions)} "  # noqa: S608
            f"ORDER BY {column}{offset_clause(dialect, offset)}")


def probe_sql(query: str) -> str:
    """No rows, only the query's columns."""
    return f"SELECT * FROM (\n{query}\n) AS segbridge_q WHERE 1 = 0"  # noqa: S608


def max_sql(query: str, column: str, conditions: list[str]) -> str:
    """The greatest cursor value (under the conditions)."""
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT MAX({column}) FROM (\n{query}\n) AS segbridge_q{where}"  # noqa: S608


def offset_clause(dialect: str, offset: int) -> str:
    if offset <= 0:
        return ""
    if dialect == "mysql":
        return f" LIMIT 18446744073709551615 OFFSET {int(offset)}"
    if dialect == "sqlite":
        return f" LIMIT -1 OFFSET {int(offset)}"
    return f" OFFSET {int(offset)}"

"""Exports: the source steps of a flow, streaming SourceRecords out of files and databases.

    file_export(kind, path, options, limits)   csv | ndjson | json (see files.py)
    RecordLimits                       the caps on every record: depth, size, fields
    CsvExport, NdjsonExport, JsonArrayExport
    DatabaseExport                     a SQL query, all rows or incrementally on a cursor
    CursorBounds, next_cursor_value    the cursor range of a run and the mark to save after it
    ExportError, ExportUnavailable     fatal / retriable failures of a whole export
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from segbridge.flows.exports.csv_export import CsvExport
from segbridge.flows.exports.cursor import (
    CursorBounds,
    decode_cursor_value,
    encode_cursor_value,
    next_cursor_value,
)
from segbridge.flows.exports.errors import ExportError, ExportUnavailable
from segbridge.flows.exports.files import FILE_TYPES, file_export
from segbridge.flows.exports.json_array import JsonArrayExport
from segbridge.flows.exports.limits import RecordLimits
from segbridge.flows.exports.ndjson import NdjsonExport

__all__ = [
    "FILE_TYPES",
    "CsvExport",
    "CursorBounds",
    "DatabaseExport",
    "ExportError",
    "ExportUnavailable",
    "JsonArrayExport",
    "NdjsonExport",
    "RecordLimits",
    "decode_cursor_value",
    "encode_cursor_value",
    "file_export",
    "next_cursor_value",
]

if TYPE_CHECKING:
    from segbridge.flows.exports.database import DatabaseExport


def __getattr__(name: str) -> Any:
    """DatabaseExport loads SQLAlchemy: only when it is asked for (a lane process reading a
    file never does)."""
    if name == "DatabaseExport":
        from segbridge.flows.exports.database import DatabaseExport

        return DatabaseExport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

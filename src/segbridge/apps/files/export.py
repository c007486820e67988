"""File exports by type, as a flow definition names them: csv, ndjson, json, parquet.

    file_export("csv", "/srv/data/orders.csv", {"delimiter": ";", "header": True},
                RecordLimits.from_settings(settings))

The path is on the server (an uploaded file is given as the path the API stored it at). Every
file is streamed: memory does not grow with the file, and every record is held to the caps
of ``limits`` (see limits.py; the defaults without it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segbridge.apps.files.csv_export import CsvExport
from segbridge.apps.files.json_array import JsonArrayExport
from segbridge.apps.files.ndjson import NdjsonExport
from segbridge.apps.files.parquet import ParquetExport, parquet_parts
from segbridge.exports.contracts import Export
from segbridge.exports.errors import ExportError
from segbridge.exports.limits import RecordLimits

FILE_TYPES = ("csv", "ndjson", "json", "parquet")
CSV_OPTIONS = frozenset({"header", "delimiter", "quote", "encoding", "skip_blank_lines"})
PARQUET_OPTIONS = frozenset({"columns"})


def file_export(kind: str, path: str | Path, options: Mapping[str, Any] | None = None,
                limits: RecordLimits | None = None) -> Export:
    """The export for a file of type ``kind`` with the flow's ``export.options``."""
    options = dict(options or {})
    allowed = CSV_OPTIONS if kind == "csv" else PARQUET_OPTIONS if kind == "parquet" \
        else frozenset({"encoding"})
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ExportError(f"Unknown option(s) for a {kind} export: {', '.join(unknown)}; "
                          f"use {', '.join(sorted(allowed))}.", cause="config")
    if kind == "csv":
        return CsvExport(path, **options, limits=limits)
    if kind == "ndjson":
        return NdjsonExport(path, **options, limits=limits)
    if kind == "json":
        return JsonArrayExport(path, **options, limits=limits)
    if kind == "parquet":  # a lane's own export of a run's single Parquet file
        return ParquetExport(parquet_parts(Path(path)), columns=options.get("columns"),
                             limits=limits, folder=Path(path).is_dir())
    raise ExportError(f"Unknown file type '{kind}'; use one of: {', '.join(FILE_TYPES)}.",
                      cause="config")

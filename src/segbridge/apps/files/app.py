"""The Files application: CSV, NDJSON, JSON and Parquet files as a flow's source.

It has no connection (a flow names its file: an upload of the account, or a server path the
install's access policy allows), so it is not offered where a user picks an application for a
connection; it is in the registry so that a run or a preview opens a file export the way it
opens any other: ``registry.exporter(kind).open_export(request)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from segbridge.apps.base import (
    Capability,
    ConnectionConfig,
    ExportRequest,
    LaneSource,
    OpenedExport,
    PingResult,
    SettingSpec,
)
from segbridge.apps.files.document import FILE_EXPORT_MODELS
from segbridge.apps.files.export import file_export
from segbridge.apps.files.parquet import ParquetExport, columns_read, parquet_parts, read_bytes
from segbridge.core.access import Targets
from segbridge.core.errors import FieldProblem


class FilesApplication:
    """Files: export the records of a CSV, NDJSON, JSON or Parquet file."""

    key = "files"
    name = "Files"
    description = ("Export the records of a CSV, NDJSON, JSON or Parquet file (an upload or a "
                   "server path; Parquet also a folder of parts).")
    capabilities = frozenset({Capability.EXPORT})
    settings: tuple[SettingSpec, ...] = ()
    connectable = False
    export_models = FILE_EXPORT_MODELS
    export_kinds = frozenset(FILE_EXPORT_MODELS)

    def validate(self, values: Mapping[str, str | None]) -> list[FieldProblem]:
        return []

    def targets(self, values: Mapping[str, str | None]) -> Targets:
        return Targets()

    def ping(self, config: ConnectionConfig, *, timeout: float) -> PingResult:
        return PingResult(ok=False, endpoint="", status=None, latency_ms=0.0, message_id=None,
                          cause="config", message="Files has no connection to test.")

    def open_export(self, request: ExportRequest) -> OpenedExport:
        kind = str(request.export["type"])
        if kind == "parquet":
            return open_parquet(request)
        path = file_path(request)
        options = dict(request.export.get("options") or {})
        export = file_export(kind, path, options, request.limits)
        return OpenedExport(export, lanes=LaneSource(kind, path, options))


def file_path(request: ExportRequest) -> Path:
    """An upload of the account, or a server path the access policy allows (checked again
    at every run and preview: a symlink may have changed, or the operator's roots)."""
    upload = request.export.get("upload")
    if upload:
        return request.uploads(str(upload))
    return request.policy.check_file(str(request.export["path"]), field="export.path")


def open_parquet(request: ExportRequest) -> OpenedExport:
    """A Parquet file or folder of parts; every part checked against the access policy (a
    part that is a symlink out of the allowed roots is refused). A single large file may be
    read by lanes (each builds the records of its blocks only); a folder is read by the run
    alone (its parts are the ones checked here)."""
    path = file_path(request)
    parts = [part if request.export.get("upload") else
             request.policy.check_file(str(part), field="export.path")
             for part in parquet_parts(path)]
    columns = request.export.get("columns")
    reads = None
    if columns is None and request.reads is not None:  # only the columns the flow reads
        reads = columns_read(path, request.reads)  # a folder's parts: each reads those it has
    export = ParquetExport(parts, columns=columns, reads=reads, limits=request.limits,
                           folder=path.is_dir())
    if path.is_dir():
        return OpenedExport(export)
    columns = columns or reads  # a single file has each of them
    options = {"columns": list(columns)} if columns else {}
    cost = None if request.preview else read_bytes(path, columns)  # its decoded size
    return OpenedExport(export, lanes=LaneSource("parquet", path, options, read_bytes=cost))

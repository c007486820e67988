"""The export section of a flow that reads a file: ``type: csv``, ``ndjson``, ``json`` or
``parquet``.

The Files application declares these models (``FilesApplication.export_models``); the flow
document takes them from the registry. A file export names a server path (under the roots the
install's access policy allows) or an upload of the account, never both; both are checked when
the flow is saved (``account_problems``) and again when a run opens the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import Field, ValidationInfo
from pydantic_core import InitErrorDetails

from segbridge.core.errors import FieldProblem, NotAllowedHere
from segbridge.exports.document import (
    DocumentPart,
    Encoding,
    ExportBase,
    NotBlank,
    OneCharacter,
    SourceAccess,
    Truth,
    located,
)

PATH_OR_UPLOAD = "give either a path on the server or an upload id"


class FileOptions(DocumentPart):
    """How an NDJSON or JSON file is read."""

    shape: ClassVar[str] = "use a mapping of options"

    encoding: Encoding = "utf-8"


class CsvOptions(FileOptions):
    """How a CSV file is read."""

    hints: ClassVar[Mapping[str, str]] = {
        "delimiter": "use a single character", "quote": "use a single character",
        "header": "use true (first line), or a list of column names",
        "skip_blank_lines": "use true or false"}

    delimiter: OneCharacter = ","
    quote: OneCharacter = '"'
    header: bool | list[str] = True
    skip_blank_lines: Truth = True


class FileExportBase(ExportBase):
    """A file on the server (``path``, under the allowed roots) or uploaded (``upload``)."""

    hints: ClassVar[Mapping[str, str]] = {
        **ExportBase.hints, "options": "use a mapping of options",
        "path": PATH_OR_UPLOAD, "upload": PATH_OR_UPLOAD}
    problem_order: ClassVar[tuple[str, ...]] = ("type", "path", "upload", "options",
                                                "key_field")

    path: str | None = None
    upload: str | None = None

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        problems = super().more_problems(data, info)
        if bool(data.get("path")) == bool(data.get("upload")):
            problems.append(located(("path",), PATH_OR_UPLOAD))
        return problems

    def account_problems(self, access: SourceAccess) -> list[FieldProblem]:
        """An upload of the account, or a path the access policy allows."""
        if self.upload:
            if not access.has_upload(self.upload):
                return [FieldProblem("export.upload", f"no upload '{self.upload}' in your "
                                                      "account; upload the file again")]
            return []
        try:
            access.policy.check_file(str(self.path), field="export.path")
        except NotAllowedHere as exc:
            return [FieldProblem("export.path", exc.message)]
        return []


class CsvExport(FileExportBase):
    """A CSV file: one record per line, named by the header (or ``options.header``)."""

    type: Literal["csv"]
    options: CsvOptions = Field(default_factory=CsvOptions)


class NdjsonExport(FileExportBase):
    """A file of JSON objects, one per line."""

    type: Literal["ndjson"]
    options: FileOptions = Field(default_factory=FileOptions)


class JsonExport(FileExportBase):
    """A JSON file: an array of objects."""

    type: Literal["json"]
    options: FileOptions = Field(default_factory=FileOptions)


class ParquetFileExport(FileExportBase):
    """A Parquet file, or a folder of Parquet parts read in name order; ``columns`` reads
    only those columns (all of them when left out)."""

    hints: ClassVar[Mapping[str, str]] = {
        **FileExportBase.hints,
        "columns": "use a list of column names (leave it out to read every column)"}
    problem_order: ClassVar[tuple[str, ...]] = ("type", "path", "upload", "columns",
                                                "key_field")

    type: Literal["parquet"]
    columns: Annotated[list[NotBlank], Field(min_length=1)] | None = None


FILE_EXPORT_MODELS: Mapping[str, type[ExportBase]] = {
    "csv": CsvExport, "ndjson": NdjsonExport, "json": JsonExport,
    "parquet": ParquetFileExport}

"""The export section of a flow that reads a query's rows: ``type: database``.

The Database application declares this model (``DatabaseApplication.export_models``); the
flow document takes it from the registry. The export names a Database connection (resolved in
the account when the flow is saved, ``connection_name``), the SELECT query, and for an
incremental export the cursor column and its lag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from segbridge.exports.document import DocumentPart, ExportBase, NotBlank


class Cursor(DocumentPart):
    """An incremental export: rows whose ``column`` passed the last run's, less the lag."""

    shape: ClassVar[str] = "use {column: updated_at, lag_seconds: 60}"
    hints: ClassVar[Mapping[str, str]] = {
        "lag_seconds": "use a whole number of seconds, 0 or more"}

    column: str
    lag_seconds: Annotated[int, Field(ge=0)] = 0

    @classmethod
    def shape_problem(cls, data: object) -> bool:
        return not isinstance(data, Mapping) or not isinstance(data.get("column"), str)


class DatabaseExport(ExportBase):
    """The rows of a SELECT query on a Database connection."""

    hints: ClassVar[Mapping[str, str]] = {
        **ExportBase.hints, "connection": "name a Database connection",
        "query": "write the SELECT query to export"}
    problem_order: ClassVar[tuple[str, ...]] = ("type", "connection", "query", "cursor",
                                                "key_field")

    type: Literal["database"]
    connection: str = Field(description="a Database connection, by name or id")
    query: NotBlank
    cursor: Cursor | None = None

    def connection_name(self) -> str:
        return self.connection


DATABASE_EXPORT_MODELS: Mapping[str, type[ExportBase]] = {"database": DatabaseExport}

"""Each export kind's section of the flow document is declared by the application that opens
it: the flow document's union of export kinds is the registry's, the OpenAPI schema shows
every kind, and the checks a file export needs when a flow is saved are the Files
application's (an upload of the account, a path the access policy allows)."""

from __future__ import annotations

from pathlib import Path

from segbridge.apps.base import Exporter
from segbridge.apps.database.document import DatabaseExport
from segbridge.apps.files.document import CsvExport, JsonExport
from segbridge.apps.registry import default_registry
from segbridge.core.access import AccessPolicy
from segbridge.exports.document import ExportBase, SourceAccess
from segbridge.flows.document import EXPORT_KINDS, FlowDocument

REGISTRY = default_registry()


def test_the_flow_document_takes_its_export_kinds_from_the_registry() -> None:
    assert REGISTRY.export_models() == EXPORT_KINDS
    assert list(EXPORT_KINDS) == ["csv", "ndjson", "json", "parquet", "database", "http",
                                 "webhook"]
    for app in REGISTRY.everything():
        if isinstance(app, Exporter):
            assert set(app.export_models) == set(app.export_kinds), app.key
            assert all(issubclass(model, ExportBase) for model in app.export_models.values())


def test_the_schema_shows_every_export_kind() -> None:
    schema = FlowDocument.model_json_schema()
    kinds, _null = schema["properties"]["export"]["anyOf"]  # null: an unfinished flow
    assert set(kinds["discriminator"]["mapping"]) == set(EXPORT_KINDS)
    assert {"CsvExport", "NdjsonExport", "JsonExport", "DatabaseExport"} <= set(schema["$defs"])


def _access(root: Path, uploads: set[str]) -> SourceAccess:
    return SourceAccess(AccessPolicy(file_roots=(root,), protected=()),
                        has_upload=lambda upload_id: upload_id in uploads)


def test_a_file_export_names_an_upload_of_the_account_or_an_allowed_path(
    tmp_path: Path,
) -> None:
    access = _access(tmp_path, {"upl_mine"})
    mine = JsonExport.model_validate({"type": "json", "upload": "upl_mine"})
    theirs = JsonExport.model_validate({"type": "json", "upload": "upl_theirs"})
    inside = CsvExport.model_validate({"type": "csv", "path": str(tmp_path / "a.csv")})
    outside = CsvExport.model_validate({"type": "csv", "path": "/etc/passwd"})
    assert mine.account_problems(access) == []
    assert [(p.field, p.message) for p in theirs.account_problems(access)] == [
        ("export.upload", "no upload 'upl_theirs' in your account; upload the file again")]
    assert inside.account_problems(access) == []
    assert [p.field for p in outside.account_problems(access)] == ["export.path"]
    assert inside.connection_name() is None


def test_a_database_export_names_its_connection_and_needs_no_file(tmp_path: Path) -> None:
    export = DatabaseExport.model_validate(
        {"type": "database", "connection": "Shop DB", "query": "SELECT 1"})
    assert export.connection_name() == "Shop DB"
    assert export.account_problems(_access(tmp_path, set())) == []

"""The Application list as the plugin boundary: the registry consults what each application
can do (export kinds, sinks), keeps applications without a connection out of the list users
pick from, and opens a file export the way it opens any other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segbridge.apps.base import (
    CannotDoThat,
    Exporter,
    ExportRequest,
    Registry,
    SinkOpener,
)
from segbridge.apps.registry import default_registry
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import NotAllowedHere, NotFound
from segbridge.exports.limits import RecordLimits

REGISTRY = default_registry()


def _request(tmp_path: Path, export: dict[str, Any], uploads: Any = None) -> ExportRequest:
    def no_uploads(upload_id: str) -> Path:
        raise NotFound(f"No upload '{upload_id}' in your account; upload the file again.")

    return ExportRequest(export=export, connection=None,
                         policy=AccessPolicy(file_roots=(tmp_path,), protected=()),
                         limits=RecordLimits(), uploads=uploads or no_uploads)


def test_export_kinds_map_to_their_applications() -> None:
    assert {kind: REGISTRY.exporter(kind).key for kind in REGISTRY.export_kinds()} \
        == {"csv": "files", "ndjson": "files", "json": "files", "parquet": "files",
            "database": "database", "http": "http", "webhook": "webhook"}
    assert sorted(REGISTRY.export_kinds()) == ["csv", "database", "http", "json", "ndjson",
                                               "parquet", "webhook"]
    assert isinstance(REGISTRY.exporter("csv"), Exporter)


def test_an_unknown_export_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(CannotDoThat, match="No application exports 'xml'; use one of: "
                                           "csv, ndjson, json, parquet, database, http, "
                                           "webhook"):
        REGISTRY.exporter("xml")


def test_only_an_application_that_imports_opens_a_sink() -> None:
    assert isinstance(REGISTRY.sink("segment"), SinkOpener)
    with pytest.raises(CannotDoThat, match="A Database connection cannot receive records"):
        REGISTRY.sink("database")
    with pytest.raises(CannotDoThat, match="A Files connection cannot receive records"):
        REGISTRY.sink("files")
    with pytest.raises(CannotDoThat, match="Unknown application 'ftp'"):
        REGISTRY.sink("ftp")


def test_files_is_not_offered_for_a_connection() -> None:
    assert [app.key for app in REGISTRY.all()] == ["segment", "database", "http"]
    assert REGISTRY.get("files") is None
    assert REGISTRY.get("database") is not None
    assert [app.key for app in REGISTRY.everything()] == ["segment", "files", "database",
                                                          "http", "webhook"]


def test_an_application_without_export_capability_is_not_an_exporter() -> None:
    class Mute:
        key, name, description = "mute", "Mute", ""
        capabilities = frozenset[Any]()
        settings = ()
        export_kinds = frozenset({"csv"})

        def open_export(self, request: ExportRequest) -> Any:
            raise AssertionError("not asked")

    registry = Registry()
    registry.add(Mute())  # type: ignore[arg-type]
    with pytest.raises(CannotDoThat):
        registry.exporter("csv")


def test_files_opens_an_allowed_path_and_offers_it_to_lanes(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a;b\n1;2\n")
    opened = REGISTRY.exporter("csv").open_export(_request(
        tmp_path, {"type": "csv", "path": str(path), "options": {"delimiter": ";"}}))
    assert [r.data for r in opened.export.records()] == [{"a": "1", "b": "2"}]
    assert opened.lanes is not None
    assert (opened.lanes.kind, opened.lanes.path, dict(opened.lanes.options)) == \
        ("csv", path.resolve(), {"delimiter": ";"})
    assert opened.bounds is None and opened.cursor_after is None


def test_files_refuses_a_path_outside_the_roots(tmp_path: Path) -> None:
    with pytest.raises(NotAllowedHere) as refused:
        REGISTRY.exporter("ndjson").open_export(_request(
            tmp_path / "inside", {"type": "ndjson", "path": str(tmp_path / "x.ndjson")}))
    assert refused.value.details == {"field": "export.path"}


def test_files_reads_an_upload_through_the_resolver(tmp_path: Path) -> None:
    path = tmp_path / "upload.ndjson"
    path.write_text('{"a": 1}\n')
    asked: list[str] = []

    def uploads(upload_id: str) -> Path:
        asked.append(upload_id)
        return path

    opened = REGISTRY.exporter("ndjson").open_export(_request(
        tmp_path, {"type": "ndjson", "upload": "up_1"}, uploads))
    assert [r.data for r in opened.export.records()] == [{"a": 1}]
    assert asked == ["up_1"]

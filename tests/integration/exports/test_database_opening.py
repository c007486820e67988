"""The Database application opens a flow's export from an ExportRequest: the connection's URL
and password, the incremental window (after the flow's stored cursor, unless its column
changed; the saved bounds when resumed) and what the run saves and stores afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segbridge.apps.base import ConnectionConfig, ExportRequest, OpenedExport, ResumeState
from segbridge.apps.database.app import DatabaseApplication
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import NotAllowedHere
from segbridge.exports.errors import ExportError
from segbridge.exports.limits import RecordLimits
from tests.integration.exports.dbs import Db

APP = DatabaseApplication()


def open_export(db: Db, tmp_path: Path, query: str, *, cursor: dict[str, Any] | None = None,
                resume: ResumeState | None = None, preview: bool = False,
                roots: tuple[Path, ...] | None = None) -> OpenedExport:
    export: dict[str, Any] = {"type": "database", "connection_id": "c1", "query": query}
    if cursor is not None:
        export["cursor"] = cursor
    return APP.open_export(ExportRequest(
        export=export, connection=ConnectionConfig({"url": db.url}, {}),
        policy=AccessPolicy(file_roots=roots or (tmp_path,), protected=()),
        limits=RecordLimits(), uploads=_no_uploads, resume=resume or ResumeState(),
        preview=preview))


def _no_uploads(upload_id: str) -> Path:
    raise AssertionError("a database export has no upload")


def events(db: Db, ids: range) -> str:
    table = db.table("events")
    db.run(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(40))")
    add(db, table, ids)
    return table


def add(db: Db, table: str, ids: range) -> None:
    db.insert(table, [{"id": i, "name": f"event {i}"} for i in ids])


def ids(opened: OpenedExport, start: int = 0) -> list[int]:
    return [r.data["id"] for r in opened.export.records(start) if r.data is not None]


def test_a_query_without_cursor_saves_nothing(db: Db, tmp_path: Path) -> None:
    table = events(db, range(1, 4))
    opened = open_export(db, tmp_path, f"SELECT * FROM {table} ORDER BY id")
    assert ids(opened) == [1, 2, 3]
    assert (opened.bounds, opened.cursor_after, opened.lanes) == (None, None, None)


def test_an_incremental_run_reads_after_the_stored_cursor(db: Db, tmp_path: Path) -> None:
    table = events(db, range(1, 6))
    query = f"SELECT * FROM {table}"
    first = open_export(db, tmp_path, query, cursor={"column": "id"})
    assert ids(first) == [1, 2, 3, 4, 5]
    assert first.bounds == {"last": None, "upper": 5}
    assert first.cursor_after == {"column": "id", "value": 5}
    add(db, table, range(6, 8))
    second = open_export(db, tmp_path, query, cursor={"column": "id"},
                         resume=ResumeState(saved_cursor=first.cursor_after))
    assert ids(second) == [6, 7]
    assert second.cursor_after == {"column": "id", "value": 7}


def test_a_cursor_of_another_column_is_not_used(db: Db, tmp_path: Path) -> None:
    table = events(db, range(1, 4))
    opened = open_export(db, tmp_path, f"SELECT * FROM {table}", cursor={"column": "id"},
                         resume=ResumeState(saved_cursor={"column": "other", "value": 2}))
    assert ids(opened) == [1, 2, 3]


def test_a_resumed_run_reads_the_same_window(db: Db, tmp_path: Path) -> None:
    table = events(db, range(1, 6))
    query = f"SELECT * FROM {table}"
    started = open_export(db, tmp_path, query, cursor={"column": "id"})
    assert started.bounds is not None
    add(db, table, range(6, 9))  # rows arrive while the run is down
    resumed = open_export(db, tmp_path, query, cursor={"column": "id"},
                          resume=ResumeState(saved_bounds=started.bounds))
    assert ids(resumed, 2) == [3, 4, 5]
    assert resumed.bounds == started.bounds
    assert resumed.cursor_after == {"column": "id", "value": 5}


def test_a_preview_reads_every_row_and_saves_nothing(db: Db, tmp_path: Path) -> None:
    table = events(db, range(1, 4))
    opened = open_export(db, tmp_path, f"SELECT * FROM {table} ORDER BY id",
                         cursor={"column": "id"},
                         resume=ResumeState(saved_cursor={"column": "id", "value": 2}),
                         preview=True)
    assert ids(opened) == [1, 2, 3]
    assert opened.bounds is None and opened.cursor_after is None


def test_the_access_policy_is_checked(tmp_path: Path) -> None:
    outside = tmp_path / "outside.db"
    db = Db("sqlite", f"sqlite:///{outside}", None)  # type: ignore[arg-type]
    with pytest.raises(NotAllowedHere) as refused:
        open_export(db, tmp_path, "SELECT 1", roots=(tmp_path / "inside",))
    assert refused.value.details == {"field": "export.connection"}


def test_an_export_without_a_connection_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="needs a Database connection"):
        APP.open_export(ExportRequest(
            export={"type": "database", "query": "SELECT 1"}, connection=None,
            policy=AccessPolicy(file_roots=(tmp_path,), protected=()), limits=RecordLimits(),
            uploads=_no_uploads))

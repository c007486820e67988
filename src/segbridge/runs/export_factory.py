"""From an export definition to an Export: files (path or upload) and databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from segbridge.apps.database.cursor import (
    CursorBounds,
    decode_cursor_value,
    encode_cursor_value,
    next_cursor_value,
)
from segbridge.apps.database.export import DatabaseExport
from segbridge.apps.database.url import targets_of
from segbridge.apps.files.export import file_export
from segbridge.connections.model import name_key
from segbridge.connections.secret_store import load_secrets
from segbridge.core.access import access_policy
from segbridge.core.errors import NotFound
from segbridge.core.settings import Settings
from segbridge.core.vault import Vault
from segbridge.exports.contracts import Export
from segbridge.exports.limits import RecordLimits
from segbridge.flows.uploads import resolve_upload
from segbridge.runs.store import RunStore
from segbridge.storage.db import Database
from segbridge.storage.models import Connection, Flow, Run

CursorAfter = Callable[[], dict[str, Any] | None] | None


def build_export(db: Database, vault: Vault, settings: Settings, run: Run,
                 export_def: dict[str, Any], store: RunStore) -> tuple[Export, CursorAfter]:
    """The export of a run; an incremental one keeps the same bounds when resumed."""
    limits = RecordLimits.from_settings(settings)
    if export_def["type"] != "database":
        path = _file_path(db, settings, run.account_id, export_def)
        return file_export(export_def["type"], path, export_def.get("options", {}),
                           limits), None
    connection_id = export_def["connection_id"]
    url, password = _database_target(db, vault, settings, run.account_id, connection_id)
    cursor = export_def.get("cursor")
    if cursor is None:
        return DatabaseExport(url, password, export_def["query"], limits=limits), None
    if run.export_bounds:  # resumed: the same bounds as when the run started
        saved = CursorBounds.from_json(run.export_bounds)
        window: dict[str, Any] = {"last_cursor": saved.last, "upper_bound": saved.upper}
    else:
        window = {"last_cursor": _saved_cursor(db, run.flow_id, cursor["column"])}
    export = DatabaseExport(url, password, export_def["query"], cursor_column=cursor["column"],
                            lag_seconds=cursor.get("lag_seconds"), limits=limits, **window)
    bounds = export.bounds()
    if bounds is None:
        return export, None
    store.save_bounds(bounds.to_json())
    column = cursor["column"]
    return export, lambda: {"column": column,
                            "value": encode_cursor_value(next_cursor_value(bounds))}


def preview_export(db: Database, vault: Vault, settings: Settings, account_id: str,
                   export_def: dict[str, Any]) -> Export:
    """The export of a flow document for a preview (all rows; nothing is saved)."""
    if export_def["type"] != "database":
        path = _file_path(db, settings, account_id, export_def)
        return file_export(export_def["type"], path, export_def.get("options", {}),
                           RecordLimits.from_settings(settings))
    connection_id = export_def.get("connection_id") or _find_connection(
        db, account_id, export_def["connection"])
    url, password = _database_target(db, vault, settings, account_id, connection_id)
    return DatabaseExport(url, password, export_def["query"],
                          limits=RecordLimits.from_settings(settings))


def _file_path(db: Database, settings: Settings, account_id: str,
               export_def: dict[str, Any]) -> Path:
    """An upload of the account, or a server path the access policy allows (checked again
    at every run and preview: a symlink may have changed, or the operator's roots)."""
    if export_def.get("upload"):
        return resolve_upload(db, settings.home, account_id, export_def["upload"])
    return access_policy(settings).check_file(export_def["path"], field="export.path")


def _database_target(db: Database, vault: Vault, settings: Settings, account_id: str,
                     connection_id: str) -> tuple[str, Any]:
    with db.session() as session:
        connection = session.get(Connection, connection_id)
        if connection is None or connection.account_id != account_id:
            raise NotFound("The export's Database connection no longer exists.")
        url = str(connection.settings["url"])
        access_policy(settings).check_targets(targets_of(url, "export.connection"))
        secrets = load_secrets(session, vault, connection)
        return url, secrets.get("password")


def _saved_cursor(db: Database, flow_id: str, column: str) -> Any:
    """The high-water mark of the last successful run, unless the cursor column changed."""
    with db.session() as session:
        flow = session.get(Flow, flow_id)
        saved = (flow.cursor or {}) if flow else {}
    if saved.get("column") != column:
        return None
    return decode_cursor_value(saved.get("value"))


def _find_connection(db: Database, account_id: str, name_or_id: str) -> str:
    with db.session() as session:
        found = session.scalar(select(Connection.id).where(
            Connection.account_id == account_id,
            (Connection.id == name_or_id) | (Connection.name_key == name_key(name_or_id))))
    if found is None:
        raise NotFound(f"No connection named '{name_or_id}' in your account.")
    return str(found)

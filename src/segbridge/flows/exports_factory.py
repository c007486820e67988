"""From an export definition to an Export: files (path or upload) and databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segbridge.core.vault import Vault
from segbridge.flows.contracts import Export
from segbridge.flows.runs import RunStore
from segbridge.flows.uploads import resolve_upload
from segbridge.storage.db import Database
from segbridge.storage.models import Run

CursorAfter = Any


def build_export(db: Database, vault: Vault, home: Path, run: Run, export_def: dict[str, Any],
                 store: RunStore) -> tuple[Export, CursorAfter]:
    kind = export_def["type"]
    if kind == "database":
        return _database_export(db, vault, run, export_def, store)
    path = _file_path(db, home, run.account_id, export_def)
    return file_export(kind, path, export_def.get("options", {})), None


def _file_path(db: Database, home: Path, account_id: str, export_def: dict[str, Any]) -> Path:
    if export_def.get("upload"):
        return resolve_upload(db, home, account_id, export_def["upload"])
    return Path(export_def["path"])


def file_export(kind: str, path: Path, options: dict[str, Any]) -> Export:
    raise NotImplementedError("file exports land with the exports package")


def _database_export(db: Database, vault: Vault, run: Run, export_def: dict[str, Any],
                     store: RunStore) -> tuple[Export, CursorAfter]:
    raise NotImplementedError("database exports land with the exports package")

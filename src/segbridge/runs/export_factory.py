"""From a flow document's export section to an opened export, through the application that
exports that kind (``registry.exporter(kind)``): this module only gathers what the application
is given (the export's connection and its decrypted secrets, the access policy, the record
caps, the account's uploads, what the run saved before) and names no application.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from segbridge.apps.base import (
    ConnectionConfig,
    Exporter,
    ExportRequest,
    OpenedExport,
    Registry,
    ResumeState,
    UploadResolver,
)
from segbridge.connections.model import name_key
from segbridge.connections.secret_store import load_secrets
from segbridge.connections.views import root_lender
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


def open_run_export(db: Database, vault: Vault, settings: Settings, registry: Registry,
                    run: Run, store: RunStore) -> OpenedExport:
    """The export of a run; the bounds it must keep when resumed are saved here."""
    export_def: Mapping[str, Any] = run.definition["export"]
    exporter = registry.exporter(str(export_def["type"]))
    connection_id = export_def.get("connection_id")
    opened = exporter.open_export(ExportRequest(
        export=export_def,
        connection=_connection_config(db, vault, run.account_id, connection_id, exporter)
        if connection_id else None,
        policy=access_policy(settings), limits=RecordLimits.from_settings(settings),
        uploads=_uploads(db, settings, run.account_id), resume=_resume(db, run),
        reads=fields_read(run.definition)))
    if opened.bounds is not None:
        store.save_bounds(dict(opened.bounds))
    return opened


def preview_export(db: Database, vault: Vault, settings: Settings, account_id: str,
                   export_def: dict[str, Any], registry: Registry) -> Export:
    """The export of a flow document for a preview (all rows; nothing is saved)."""
    exporter = registry.exporter(str(export_def["type"]))
    connection_id = export_def.get("connection_id")
    if not connection_id and export_def.get("connection"):
        connection_id = _find_connection(db, account_id, str(export_def["connection"]),
                                         exporter)
    return exporter.open_export(ExportRequest(
        export=export_def,
        connection=_connection_config(db, vault, account_id, connection_id, exporter)
        if connection_id else None,
        policy=access_policy(settings), limits=RecordLimits.from_settings(settings),
        uploads=_uploads(db, settings, account_id), preview=True)).export


def fields_read(definition: Mapping[str, Any]) -> frozenset[str] | None:
    """The record's top-level fields a run of this flow reads: its imports' mappings, its
    filters, its lookups' parameters and its key field; None when it may read any field (a
    mapping or a filter that reads the whole record), or when there is no key field: a record
    without one is identified by its whole content (``MessageIds.by_position``), which must
    not depend on what the mapping reads."""
    from segbridge.mapping import mapping_inputs
    from segbridge.mapping.expressions.parser import parse

    key_field = definition["export"].get("key_field")
    if not key_field:
        return None
    reads = {str(key_field).split(".")[0]}
    for step in definition.get("imports", []):
        inputs = mapping_inputs(step["call"], step["mapping"])
        if inputs is None:
            return None
        reads.update(inputs)
    for step in definition.get("steps", []):
        if "filter" in step:
            expression = parse(step["filter"]["expression"])
            if expression.whole_record:
                return None
            reads.update(expression.fields)
        if "lookup" in step:
            reads.update(str(path).split(".")[0]
                         for path in dict(step["lookup"].get("params") or {}).values())
    return frozenset(reads)


def _connection_config(db: Database, vault: Vault, account_id: str, connection_id: str,
                       exporter: Exporter) -> ConnectionConfig:
    with db.session() as session:
        connection = session.get(Connection, connection_id)
        if connection is None or connection.account_id != account_id:
            raise NotFound(f"The export's {exporter.name} connection no longer exists.")
        secrets = load_secrets(session, vault, connection)
        rate = root_lender(session, connection).requests_per_second
        return ConnectionConfig(dict(connection.settings), secrets, requests_per_second=rate)


def _uploads(db: Database, settings: Settings, account_id: str) -> UploadResolver:
    def resolve(upload_id: str) -> Path:
        return resolve_upload(db, settings.home, account_id, upload_id)

    return resolve


def _resume(db: Database, run: Run) -> ResumeState:
    """The bounds the run started with (resumed), else the flow's stored cursor."""
    if run.export_bounds:
        return ResumeState(saved_bounds=run.export_bounds)
    with db.session() as session:
        flow = session.get(Flow, run.flow_id)
        return ResumeState(saved_cursor=flow.cursor if flow else None)


def _find_connection(db: Database, account_id: str, name_or_id: str,
                     exporter: Exporter) -> str:
    """An unsaved document's export connection, by name or id: one of the account's
    connections to the application that opens this kind of export."""
    with db.session() as session:
        found = session.scalar(select(Connection.id).where(
            Connection.account_id == account_id, Connection.application == exporter.key,
            (Connection.id == name_or_id) | (Connection.name_key == name_key(name_or_id))))
    if found is None:
        raise NotFound(f"No {exporter.name} connection named '{name_or_id}' in your account.")
    return str(found)

"""Building a run's plan from its definition snapshot: the export, the filters, and for each
import its compiled mapping, messageIds and delivery (endpoint, write key, connection pool)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from segbridge.apps.files.export import FILE_TYPES
from segbridge.apps.segment.endpoints import resolve_endpoint
from segbridge.apps.segment.sink import Delivery, Reachability, RetryPolicy
from segbridge.concurrency.governor import Governor
from segbridge.connections.model import DEFAULT_CONCURRENCY
from segbridge.connections.secret_store import load_secrets
from segbridge.connections.views import root_lender
from segbridge.core.access import access_policy
from segbridge.core.errors import FatalError
from segbridge.core.settings import Settings
from segbridge.core.vault import Vault
from segbridge.exports.contracts import Export, SourceRecord
from segbridge.exports.limits import RecordLimits
from segbridge.runs.engine import ImportPlan, RunPlan
from segbridge.runs.export_factory import build_export
from segbridge.runs.lanes import LaneImport, LanePolicy, LaneSpec
from segbridge.runs.lifecycle import RunStatus
from segbridge.runs.message_ids import MessageIds
from segbridge.runs.producer import Source
from segbridge.runs.store import RunStore
from segbridge.storage.db import Database
from segbridge.storage.models import Connection, RecordErrorRow, Run

TYPICAL_BATCH_CALLS = 2000  # calls of ~250 bytes in a batch cut at ~475 KB


@dataclass
class PlanContext:
    db: Database
    vault: Vault
    governor: Governor
    http: httpx.AsyncClient
    settings: Settings
    policy: RetryPolicy
    lanes: LanePolicy = field(default_factory=LanePolicy)


def build_plan(ctx: PlanContext, run: Run, store: RunStore) -> RunPlan:
    definition = run.definition
    from segbridge.mapping import compile_expression, compile_mapping

    imports = [_import_plan(ctx, run, step, store, compile_mapping)
               for step in definition["imports"]]
    export_def = definition["export"]
    export, cursor_after = _export(ctx, run, export_def, store)
    filters = [compile_expression(text) for text in _filter_expressions(definition)]
    chunks_ahead = min(32, 4 + max(_level(ctx, i.connection_id) for i in imports))
    source = Source(export=export, imports=imports, start=run.checkpoint,
                    key_field=export_def.get("key_field"), filters=filters)
    lanes = _lanes(ctx.lanes, run, export)
    if lanes is not None:
        chunks_ahead = lane_chunks_ahead(chunks_ahead, lanes)
    return RunPlan(run_id=run.id, source=source, imports=imports, cursor_after=cursor_after,
                   chunks_ahead=chunks_ahead, lanes=lanes)


def lane_chunks_ahead(chunks_ahead: int, lanes: LaneSpec) -> int:
    """A lane's chunk is a block of records (several batches), not one batch: keep about as
    many calls ahead as one producer would, at least one block per lane, and never more
    chunks than one producer (a cancel stops what has not started)."""
    in_calls = -(-chunks_ahead * TYPICAL_BATCH_CALLS // lanes.block_records)
    return min(chunks_ahead, max(lanes.count + 1, in_calls))


def _lanes(policy: LanePolicy, run: Run, export: Export) -> LaneSpec | None:
    """Lanes for a large file (not for a query, nor for a retry of chosen errors)."""
    definition = run.definition
    export_def = definition["export"]
    path = getattr(export, "path", None)
    if export_def["type"] not in FILE_TYPES or "retry_errors" in definition \
            or not isinstance(path, Path) or policy.count < 2:
        return None
    try:
        size = path.stat().st_size
    except OSError:
        return None  # the run's own export says what is wrong with the file
    if not policy.applies(size):
        return None
    imports = [LaneImport(step["name"], step["call"], step["mapping"], run.flow_id,
                          _salt(run))
               for step in definition["imports"]]
    limits = getattr(export, "limits", None)  # the caps of the run's own export
    return LaneSpec(count=policy.count, block_records=policy.block_records,
                    export={"type": export_def["type"], "path": str(path),
                            "options": export_def.get("options", {})},
                    imports=imports,
                    filters=_filter_expressions(definition),
                    key_field=export_def.get("key_field"), start=run.checkpoint,
                    limits=limits.to_json() if isinstance(limits, RecordLimits) else {})


def _export(ctx: PlanContext, run: Run, export_def: dict[str, Any],
            store: RunStore) -> tuple[Export, Any]:
    if "retry_errors" in run.definition:
        return ErrorsExport(ctx.db, run.definition["retry_errors"]), None
    return build_export(ctx.db, ctx.vault, ctx.settings, run, export_def, store)


def _filter_expressions(definition: dict[str, Any]) -> list[str]:
    return [step["filter"]["expression"] for step in definition.get("steps", [])]


def _salt(run: Run) -> str:
    """What makes messageIds fresh when a run asks for it (its id), else nothing."""
    return run.id if run.fresh_message_ids else ""


def _level(ctx: PlanContext, connection_id: str) -> int:
    with ctx.db.session() as session:
        connection = session.get(Connection, connection_id)
        assert connection is not None
        return root_lender(session, connection).concurrency_level or DEFAULT_CONCURRENCY


def _import_plan(ctx: PlanContext, run: Run, step: dict[str, Any], store: RunStore,
                 compile_mapping: Any) -> ImportPlan:
    connection_id = step["connection_id"]
    with ctx.db.session() as session:
        connection = session.get(Connection, connection_id)
        if connection is None or connection.account_id != run.account_id:
            raise FatalError(f"The connection of import '{step['name']}' no longer exists.",
                             cause="missing_connection")
        root = root_lender(session, connection)
        secrets = load_secrets(session, ctx.vault, connection)
        endpoint = resolve_endpoint(connection.settings.get("region"),
                                    connection.settings.get("endpoint"))
    access_policy(ctx.settings).check_url(
        endpoint.url(""), field=f"imports.{step['name']}.connection")
    pool = root.id
    ctx.governor.configure(pool, root.concurrency_level or DEFAULT_CONCURRENCY)
    delivery = Delivery(ctx.http, endpoint, secrets["write_key"], ctx.governor, pool,
                        _reachability(store, connection_id), ctx.policy)
    ids = MessageIds(run.flow_id, step["name"], step["call"], _salt(run))
    return ImportPlan(name=step["name"], call_type=step["call"],
                      map_record=compile_mapping(step["call"], step["mapping"]), ids=ids,
                      delivery=delivery, connection_id=connection_id)


def _reachability(store: RunStore, connection_id: str) -> Reachability:
    import asyncio

    async def unreachable(error: Any) -> None:
        await asyncio.to_thread(store.set_status, RunStatus.PAUSED,
                                f"paused: the receiver cannot be reached ({error.message}); "
                                "the run resumes when it is back")
        await asyncio.to_thread(store.set_connection_status, connection_id, "offline")

    async def reachable() -> None:
        await asyncio.to_thread(store.set_status, RunStatus.RUNNING, "")
        await asyncio.to_thread(store.set_connection_status, connection_id, "online")

    return Reachability(unreachable=unreachable, reachable=reachable)


class ErrorsExport:
    """The records of chosen errors, for a retry run: record data, or the failed call."""

    def __init__(self, db: Database, error_ids: list[str]) -> None:
        self._db = db
        self._ids = error_ids
        self._next = 0

    def read_share(self) -> float | None:
        return self._next / len(self._ids) if self._ids else 1.0

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        with self._db.session() as session:
            rows = {row.id: row for row in session.scalars(
                select(RecordErrorRow).where(RecordErrorRow.id.in_(self._ids)))}
        for position, error_id in enumerate(self._ids):
            self._next = position + 1  # read so far, this one included
            if position < start_position or error_id not in rows:
                continue
            row = rows[error_id]
            if row.step == "import" and row.data is not None:
                yield SourceRecord(position, row.ref, None, call=row.data,
                                   import_name=row.import_name)
            elif row.data is not None:
                yield SourceRecord(position, row.ref, row.data)
            else:
                yield SourceRecord(position, row.ref, None, error=row.reason, raw=row.raw)

"""Building a run's plan from its definition snapshot: the export, the filters, and for each
import its compiled mapping, messageIds and sink (opened by the connection's application,
within its connection pool).

The plan asks the registry for the export kind's application and for each import
connection's application; it never names an application nor one of its settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from segbridge.apps.base import ConnectionConfig, LaneSource, Registry, SinkRequest
from segbridge.apps.registry import default_registry
from segbridge.concurrency.governor import Governor
from segbridge.concurrency.rates import RateLimit
from segbridge.connections.model import DEFAULT_CONCURRENCY
from segbridge.connections.secret_store import load_secrets
from segbridge.connections.views import root_lender
from segbridge.core.access import Targets, access_policy
from segbridge.core.clock import SYSTEM_CLOCK, Clock
from segbridge.core.errors import FatalError
from segbridge.core.settings import Settings
from segbridge.core.vault import Vault
from segbridge.exports.contracts import Export, SourceRecord
from segbridge.exports.limits import RecordLimits
from segbridge.runs.diff import SyncMode, version_hasher
from segbridge.runs.diff_deletions import deleted_calls
from segbridge.runs.diff_store import DiffRun, open_diff, retry_check
from segbridge.runs.engine import ImportPlan, RunPlan
from segbridge.runs.export_factory import open_run_export
from segbridge.runs.lanes import LaneImport, LaneLookup, LanePolicy, LaneSpec
from segbridge.runs.lifecycle import RunStatus
from segbridge.runs.lookup_factory import open_lookup_steps
from segbridge.runs.lookups import LookupSteps
from segbridge.runs.message_ids import MessageIds
from segbridge.runs.producer import Source
from segbridge.runs.store import RunStore
from segbridge.sinks.contracts import Reachability, RetryPolicy
from segbridge.storage.db import Database
from segbridge.storage.models import Connection, RecordErrorRow, Run

CursorAfter = Callable[[], dict[str, Any] | None] | None

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
    registry: Registry = field(default_factory=default_registry)
    clock: Clock = SYSTEM_CLOCK  # the sinks' waits (retries, pauses): simulated in tests


def build_plan(ctx: PlanContext, run: Run, store: RunStore) -> RunPlan:
    definition = run.definition
    from segbridge.mapping import compile_expression, compile_mapping

    imports = [_import_plan(ctx, run, step, store, compile_mapping)
               for step in definition["imports"]]
    export_def = definition["export"]
    export, cursor_after, lane_source = _export(ctx, run, store)
    filters = [compile_expression(text) for text in _filter_expressions(definition)]
    chunks_ahead = min(32, 4 + max(_level(ctx, i.connection_id) for i in imports))
    lookups = _lookups(ctx, run)
    diff = _diff(ctx, run, imports)  # (the producer, or each lane, compares the records)
    retry = "retry_errors" in definition
    check = diff.check() if diff is not None else retry_check(
        ctx.db, run.flow_id, [(i.name, i.sync) for i in imports]) if retry else None
    source = Source(export=export, imports=imports, start=run.checkpoint,
                    key_field=export_def.get("key_field"), filters=filters, lookups=lookups,
                    diff=check, diff_sends_all=retry)
    lanes = _lanes(ctx.lanes, run, export, lane_source, lookups, diff)
    if lanes is not None:
        chunks_ahead = lane_chunks_ahead(chunks_ahead, lanes)
        lookups.close()  # each lane opens its own
    return RunPlan(run_id=run.id, source=source, imports=imports, cursor_after=cursor_after,
                   chunks_ahead=chunks_ahead, lanes=lanes, diff=diff,
                   failed_before=int((run.counts or {}).get("failed", 0)))


def _diff(ctx: PlanContext, run: Run, imports: list[ImportPlan]) -> DiffRun | None:
    """The run's diff syncs. A retry of chosen errors has none: it sends every record it
    retries and stages nothing, after comparing them read only (``retry_check``: their
    messageIds name the version each replaces, as the next run's do), and the next run
    compares those records again (sent twice at most, with one messageId)."""
    if "retry_errors" in run.definition:
        return None
    return open_diff(ctx.db, run.id, run.flow_id, run.checkpoint,
                     [(i.name, i.sync) for i in imports],
                     deleted_calls(imports, run.definition["export"].get("key_field")))


def lane_chunks_ahead(chunks_ahead: int, lanes: LaneSpec) -> int:
    """A lane's chunk is a block of records (several batches), not one batch: keep about as
    many calls ahead as one producer would, at least one block per lane, and never more
    chunks than one producer (a cancel stops what has not started)."""
    in_calls = -(-chunks_ahead * TYPICAL_BATCH_CALLS // lanes.block_records)
    return min(chunks_ahead, max(lanes.count + 1, in_calls))


def _lanes(policy: LanePolicy, run: Run, export: Export, source: LaneSource | None,
           lookups: LookupSteps, diff: DiffRun | None) -> LaneSpec | None:
    """Lanes for a large file (not for a query, nor for a retry of chosen errors); each lane
    opens the flow's lookups on its own (its own connections and caches)."""
    definition = run.definition
    if source is None or policy.count < 2:
        return None
    try:
        size = source.path.stat().st_size if source.read_bytes is None else source.read_bytes
    except OSError:
        return None  # the run's own export says what is wrong with the file
    if not policy.applies(size):
        return None
    imports = [LaneImport(step["name"], step["call"], step["mapping"], run.flow_id,
                          _salt(run), step.get("sync", "all"), step.get("deleted"))
               for step in definition["imports"]]
    limits = getattr(export, "limits", None)  # the caps of the run's own export
    return LaneSpec(count=policy.count, block_records=policy.block_records,
                    export={"type": source.kind, "path": str(source.path),
                            "options": dict(source.options)},
                    imports=imports,
                    filters=_filter_expressions(definition),
                    key_field=definition["export"].get("key_field"), start=run.checkpoint,
                    limits=limits.to_json() if isinstance(limits, RecordLimits) else {},
                    lookups=_lane_lookups(lookups),
                    diff=diff.lane_check() if diff is not None else None)


def _lane_lookups(lookups: LookupSteps) -> list[LaneLookup]:
    return [LaneLookup.of(*step.opened_by) for step in lookups.steps
            if step.opened_by is not None]


def _export(ctx: PlanContext, run: Run, store: RunStore) -> tuple[Export, CursorAfter,
                                                                   LaneSource | None]:
    """The run's export, the cursor to store after it succeeds, and its file for lanes."""
    if "retry_errors" in run.definition:
        return ErrorsExport(ctx.db, run.definition["retry_errors"]), None, None
    opened = open_run_export(ctx.db, ctx.vault, ctx.settings, ctx.registry, run, store)
    cursor = opened.cursor_after
    after = (lambda: dict(cursor)) if cursor is not None else None
    return opened.export, after, opened.lanes


def _filter_expressions(definition: dict[str, Any]) -> list[str]:
    return [step["filter"]["expression"] for step in definition.get("steps", [])
            if "filter" in step]


def _lookups(ctx: PlanContext, run: Run) -> LookupSteps:
    """The flow's lookups, opened in the run's account (none: empty)."""
    return open_lookup_steps(ctx.db, ctx.vault, ctx.settings, ctx.registry, run.account_id,
                             run.definition.get("steps", []))


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
        application = ctx.registry.sink(connection.application)
        root = root_lender(session, connection)
        config = ConnectionConfig(dict(connection.settings),
                                  load_secrets(session, ctx.vault, connection))
    targets = application.targets(config.values)
    access_policy(ctx.settings).check_targets(
        _as_import_targets(targets, f"imports.{step['name']}.connection"))
    pool = root.id
    ctx.governor.configure(pool, root.concurrency_level or DEFAULT_CONCURRENCY)
    ctx.governor.configure_rate(pool, RateLimit(root.requests_per_second,
                                                root.events_per_second))
    sink = application.open_sink(SinkRequest(
        connection=config, import_name=step["name"], http=ctx.http, governor=ctx.governor,
        pool=pool, reachability=_reachability(store, connection_id), policy=ctx.policy,
        sleep=ctx.clock.sleep))
    ids = MessageIds(run.flow_id, step["name"], step["call"], _salt(run))
    sync = SyncMode(step.get("sync", SyncMode.ALL))
    return ImportPlan(name=step["name"], call_type=step["call"],
                      map_record=compile_mapping(step["call"], step["mapping"]), ids=ids,
                      delivery=sink, connection_id=connection_id, sync=sync,
                      version=version_hasher(step["call"], step["mapping"])
                      if sync is not SyncMode.ALL else None,
                      deleted=step.get("deleted") if sync is not SyncMode.ALL else None)


def _as_import_targets(targets: Targets, field_name: str) -> Targets:
    """What the connection reaches, each under the import's field (where a user fixes it)."""
    return Targets(files=tuple((field_name, path) for _f, path in targets.files),
                   urls=tuple((field_name, url) for _f, url in targets.urls),
                   hosts=tuple((field_name, host, port) for _f, host, port in targets.hosts),
                   databases=tuple((field_name, host, port, name)
                                   for _f, host, port, name in targets.databases))


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

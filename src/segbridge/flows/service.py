"""Flows: create and validate (flows as code), run now, preview, runs and record errors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segbridge.accounts.roles import Permission, may, require
from segbridge.accounts.service import Principal
from segbridge.apps.base import CannotDoThat, Registry, is_connectable
from segbridge.apps.registry import default_registry
from segbridge.connections.model import name_key
from segbridge.core.access import AccessPolicy
from segbridge.core.clock import utcnow
from segbridge.core.errors import (
    Conflict,
    FieldProblem,
    NotFound,
    ValidationFailed,
)
from segbridge.core.ids import new_id
from segbridge.core.yaml_input import load_yaml
from segbridge.exports.document import SourceAccess
from segbridge.flows.definition import lookup_connection_ids, resolved_steps
from segbridge.flows.document import FlowDocument, parse_flow_document, stored_flow_document
from segbridge.flows.integrations import find_integration
from segbridge.flows.views import (
    FlowPublic,
    RecordErrorPublic,
    RunOfFlowPublic,
    RunPublic,
    document,
    public_error,
    public_flow,
    public_run,
    public_run_of_flow,
)
from segbridge.runs.counts import RecordErrorStatus
from segbridge.runs.diff import is_diffed
from segbridge.runs.diff_store import DiffStore
from segbridge.runs.lifecycle import ACTIVE, RunStatus, transition
from segbridge.runs.queue import RunQueue
from segbridge.runs.retries import retry_definition
from segbridge.runs.store import create_run, reopen
from segbridge.storage.db import Database
from segbridge.storage.models import (
    Connection,
    Flow,
    FlowConnection,
    Integration,
    IntegrationConnection,
    RecordErrorRow,
    Run,
    Upload,
)


class SnapshotReset(BaseModel):
    """An import's snapshot forgotten: its next run sends every record again."""

    flow_id: str
    import_name: str
    forgotten: int = Field(description="how many keys the snapshot held")


class FlowService:
    def __init__(self, db: Database, access: AccessPolicy, queue: RunQueue,
                 registry: Registry | None = None) -> None:
        self.db = db
        self.access = access
        self.queue = queue  # where started runs go to be executed (see runs/queue.py)
        # the applications that export a flow's records and receive its imports' calls
        self.registry = registry or default_registry()

    # ---- flows -----------------------------------------------------------------------------

    def create(self, principal: Principal, doc: object, *,
               unfinished: bool = False) -> FlowPublic:
        """Create a flow from its document (JSON or YAML, parsed): refused with every
        problem listed. ``unfinished`` (the flow builder): the export and the imports may
        come later; until both are there the flow is disabled and cannot run."""
        require(principal, Permission.EDIT_FLOWS)
        with self.db.session() as session:
            flow = Flow(id=new_id("flw"), account_id=principal.account_id)
            self._apply(session, principal, flow, doc, unfinished=unfinished)
            session.add(flow)
            self._save(session, flow)
            return self._public(session, flow)

    def update(self, principal: Principal, flow_id: str, doc: object, *,
               unfinished: bool = False) -> FlowPublic:
        require(principal, Permission.EDIT_FLOWS)
        with self.db.session() as session:
            flow = _owned(session, principal, flow_id)
            key_field = _key_field(flow.definition)
            self._apply(session, principal, flow, doc, unfinished=unfinished)
            if _key_field(flow.definition) != key_field:  # the snapshots' keys are another
                # field's values: they compare with nothing, and none of them was deleted
                if flow.active_run_id:
                    raise Conflict(f"The flow '{flow.name}' has a run in progress; change its "
                                   "export's key_field once the run has ended (or cancel it).")
                DiffStore.delete_flow(session, flow.id)  # (in this transaction: no run can
                # start between the check and the deletion)
            flow.updated_at = utcnow()
            self._save(session, flow)
            return self._public(session, flow)

    def import_yaml(self, principal: Principal, text: str) -> FlowPublic:
        """Create the flow, or update the flow of the same name (flows as code)."""
        require(principal, Permission.EDIT_FLOWS)
        doc = load_yaml(text)
        name = doc.get("name") if isinstance(doc, dict) else None
        with self.db.session() as session:
            existing = session.scalar(select(Flow.id).where(
                Flow.account_id == principal.account_id,
                Flow.name_key == name_key(str(name or ""))))
        if existing:
            return self.update(principal, existing, doc)
        return self.create(principal, doc)

    def export_yaml(self, principal: Principal, flow_id: str) -> str:
        with self.db.session() as session:
            flow = _owned(session, principal, flow_id)
            doc = document(flow.definition)
            return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)

    def get(self, principal: Principal, flow_id: str) -> FlowPublic:
        with self.db.session() as session:
            return self._public(session, _owned(session, principal, flow_id))

    def find(self, principal: Principal, name_or_id: str) -> FlowPublic:
        with self.db.session() as session:
            flow = session.get(Flow, name_or_id)
            if flow is None or flow.account_id != principal.account_id:
                flow = session.scalar(select(Flow).where(
                    Flow.account_id == principal.account_id,
                    Flow.name_key == name_key(name_or_id)))
            if flow is None:
                raise NotFound(f"No flow named or with id '{name_or_id}' in your account.")
            return self._public(session, flow)

    def list_all(self, principal: Principal) -> list[FlowPublic]:
        with self.db.session() as session:
            rows = session.scalars(select(Flow).where(
                Flow.account_id == principal.account_id).order_by(Flow.name_key))
            return [self._public(session, row) for row in rows]

    def set_enabled(self, principal: Principal, flow_id: str, enabled: bool) -> FlowPublic:
        require(principal, Permission.EDIT_FLOWS)
        with self.db.session() as session:
            flow = _owned(session, principal, flow_id)
            if enabled:
                _refuse_unfinished(flow, "enable it")
            flow.enabled = enabled
            flow.definition = {**flow.definition, "enabled": enabled}
            flow.next_run_at = next_fire(flow) if enabled else None
            return self._public(session, flow)

    def delete(self, principal: Principal, flow_id: str) -> None:
        require(principal, Permission.EDIT_FLOWS)
        with self.db.session() as session:
            flow = _owned(session, principal, flow_id)
            if flow.active_run_id:
                raise Conflict(f"The flow '{flow.name}' has a run in progress; cancel it first.")
            session.execute(delete(RecordErrorRow).where(RecordErrorRow.flow_id == flow.id))
            session.execute(delete(Run).where(Run.flow_id == flow.id))
            DiffStore.delete_flow(session, flow.id)
            session.delete(flow)

    def reset_snapshot(self, principal: Principal, flow_id: str, import_name: str, *,
                       confirm: bool) -> SnapshotReset:
        """Forget what an import sent (a sync of changed or new records): its next run sends
        every record again. Refused without ``confirm``, and while the flow runs."""
        require(principal, Permission.RUN_FLOWS)
        if not confirm:
            raise ValidationFailed([FieldProblem(
                "confirm", "resetting the snapshot makes the next run send every record "
                           "again: confirm with confirm: true")])
        with self.db.session() as session:
            flow = _owned(session, principal, flow_id)
            if flow.active_run_id:
                raise Conflict(f"The flow '{flow.name}' has a run in progress; wait for it or "
                               "cancel it, then reset the snapshot.")
            names = [str(step.get("name")) for step in flow.definition.get("imports", [])]
            if import_name not in names:
                raise NotFound(f"The flow '{flow.name}' has no import named '{import_name}'; "
                               f"its imports: {', '.join(names) or 'none'}.")
        forgotten = DiffStore(self.db).reset(flow_id, import_name)
        return SnapshotReset(flow_id=flow_id, import_name=import_name, forgotten=forgotten)

    # ---- runs ------------------------------------------------------------------------------

    def start_run(self, principal: Principal, flow_id: str, *, fresh_message_ids: bool = False,
                  trigger: str = "manual", execute: bool = True) -> RunPublic:
        require(principal, Permission.RUN_FLOWS)
        with self.db.session() as session:
            flow = _owned(session, principal, flow_id)
            _refuse_unfinished(flow, "run it")
            if not flow.enabled:
                raise Conflict(f"The flow '{flow.name}' is disabled; enable it to run it.")
            run = create_run(session, flow, trigger=trigger, fresh_message_ids=fresh_message_ids,
                             definition=dict(flow.definition))
            if execute:
                self.queue.enqueue_in(session, run.id, run.flow_id)
            return public_run(run)

    def get_run(self, principal: Principal, run_id: str) -> RunPublic:
        with self.db.session() as session:
            return public_run(_owned_run(session, principal, run_id))

    def list_runs(self, principal: Principal, flow_id: str, limit: int = 50) -> list[RunPublic]:
        with self.db.session() as session:
            _owned(session, principal, flow_id)
            rows = session.scalars(select(Run).where(Run.flow_id == flow_id)
                                   .order_by(Run.created_at.desc()).limit(limit))
            return [public_run(row) for row in rows]

    def recent_runs(self, principal: Principal, limit: int = 100) -> list[RunOfFlowPublic]:
        """The account's latest runs, of every flow, newest first, with their flow's name."""
        with self.db.session() as session:
            rows = session.execute(
                select(Run, Flow.name).join(Flow, Flow.id == Run.flow_id)
                .where(Run.account_id == principal.account_id)
                .order_by(Run.created_at.desc()).limit(limit))
            return [public_run_of_flow(run, name) for run, name in rows]

    def cancel_run(self, principal: Principal, run_id: str) -> RunPublic:
        require(principal, Permission.RUN_FLOWS)
        with self.db.session() as session:
            run = _owned_run(session, principal, run_id)
            if run.status == RunStatus.CANCELING:
                raise Conflict("The run is being canceled already; it stops at its next chunk.")
            if run.status not in ACTIVE:
                raise Conflict(f"The run is {run.status}; only a queued, running or paused run "
                               "can be canceled.")
            run.status = transition(run.status, RunStatus.CANCELING)
            return public_run(run)

    def resume_run(self, principal: Principal, run_id: str, *, lease_seconds: int,
                   execute: bool = True) -> RunPublic:
        """Resume a run from its checkpoint: one whose process was killed, or one that failed
        by a crash; 409, saying why, for any other run."""
        require(principal, Permission.RUN_FLOWS)
        with self.db.session() as session:
            run = _owned_run(session, principal, run_id)
            _same_key_field(session, run)
            reopen(session, run, lease_seconds)
            if execute:
                self.queue.enqueue_in(session, run.id, run.flow_id)
            return public_run(run)

    # ---- record errors ---------------------------------------------------------------------

    def list_errors(self, principal: Principal, flow_id: str, *,
                    status: str | None = RecordErrorStatus.OPEN, run_id: str | None = None,
                    limit: int = 1000,
                    offset: int = 0) -> list[RecordErrorPublic]:
        """A page of a flow's record errors, oldest first (``offset`` pages on)."""
        with self.db.session() as session:
            _owned(session, principal, flow_id)
            query = select(RecordErrorRow).where(RecordErrorRow.flow_id == flow_id)
            if status:
                query = query.where(RecordErrorRow.status == status)
            if run_id:
                query = query.where(RecordErrorRow.run_id == run_id)
            rows = session.scalars(query.order_by(RecordErrorRow.created_at,
                                                  RecordErrorRow.position, RecordErrorRow.id)
                                   .limit(limit).offset(offset))
            with_data = may(principal, Permission.VIEW_RECORD_DATA)
            return [public_error(row, with_data=with_data) for row in rows]

    def open_error_ids(self, principal: Principal, flow_id: str) -> list[str]:
        """The ids of every open error of a flow (to retry or resolve them all)."""
        with self.db.session() as session:
            _owned(session, principal, flow_id)
            return list(session.scalars(
                select(RecordErrorRow.id).where(RecordErrorRow.flow_id == flow_id,
                                                RecordErrorRow.status == RecordErrorStatus.OPEN)
                .order_by(RecordErrorRow.created_at, RecordErrorRow.position, RecordErrorRow.id)))

    def resolve_errors(self, principal: Principal, flow_id: str, error_ids: list[str]) -> int:
        require(principal, Permission.HANDLE_ERRORS)
        with self.db.session() as session:
            rows = self._open_errors(session, principal, flow_id, error_ids)
            for row in rows:
                row.status = RecordErrorStatus.RESOLVED
                row.resolved_at = utcnow()
            return len(rows)

    def retry_errors(self, principal: Principal, flow_id: str, error_ids: list[str],
                     edits: Mapping[str, Mapping[str, object]] | None = None, *,
                     execute: bool = True) -> RunPublic:
        """Send the chosen errors' records again (optionally with edited data) in a retry run."""
        require(principal, Permission.HANDLE_ERRORS)
        edits = edits or {}
        with self.db.session() as session:
            flow = _owned(session, principal, flow_id)
            rows = self._open_errors(session, principal, flow_id, error_ids)
            for row in rows:
                if row.id in edits:
                    row.data = dict(edits[row.id])
                row.status = RecordErrorStatus.RETRYING
            from_runs = {row.run_id for row in rows}  # one run: the retry links back to it
            run = create_run(session, flow, trigger="retry", fresh_message_ids=False,
                             definition=retry_definition(
                                 dict(flow.definition), [r.id for r in rows],
                                 retry_of_run=from_runs.pop() if len(from_runs) == 1 else None))
            if execute:
                self.queue.enqueue_in(session, run.id, run.flow_id)
            return public_run(run)

    def _open_errors(self, session: Session, principal: Principal, flow_id: str,
                     error_ids: list[str]) -> list[RecordErrorRow]:
        _owned(session, principal, flow_id)
        rows = list(session.scalars(select(RecordErrorRow).where(
            RecordErrorRow.flow_id == flow_id, RecordErrorRow.id.in_(error_ids),
            RecordErrorRow.status == RecordErrorStatus.OPEN).order_by(RecordErrorRow.created_at,
                                                      RecordErrorRow.position)))
        missing = set(error_ids) - {row.id for row in rows}
        if missing:
            raise NotFound(f"No open error with id(s) {', '.join(sorted(missing))} in this flow.")
        return rows

    # ---- helpers ---------------------------------------------------------------------------

    def _apply(self, session: Session, principal: Principal, flow: Flow, doc: object, *,
               unfinished: bool = False) -> None:
        typed = parse_flow_document(doc, unfinished=unfinished)
        written = cast(Mapping[str, object], doc)  # a mapping: parse_flow_document said so
        problems = self._resolve(session, principal, flow, typed, written)
        if problems:
            raise ValidationFailed(problems)

    def _resolve(self, session: Session, principal: Principal, flow: Flow, doc: FlowDocument,
                 written: Mapping[str, object]) -> list[FieldProblem]:
        """The names the document gives, resolved in the account (integration, connections,
        a file or an upload). The definition stored is the document as written, with each
        connection's id beside its name."""
        problems: list[FieldProblem] = []
        account = principal.account_id
        integration = find_integration(session, account, doc.integration)
        if integration is None:
            problems.append(FieldProblem("integration", f"no integration named "
                                         f"'{doc.integration}'; create it first"))
        name = doc.name.strip()
        other = session.scalar(select(Flow.id).where(
            Flow.account_id == account, Flow.name_key == name_key(name)))
        if other is not None and other != flow.id:
            problems.append(FieldProblem("name", f"a flow named '{name}' exists "
                                                 "already; choose another name"))
        enabled = doc.enabled and not doc.missing_parts()  # an unfinished flow cannot run
        steps = cast(list[Mapping[str, object]], written.get("steps") or [])
        definition: dict[str, object] = {
            **written, "name": name, "enabled": enabled,
            "steps": resolved_steps(session, account, self.registry, steps, problems)}
        if doc.export is not None:
            definition["export"] = self._resolved_export(session, account, doc, written,
                                                         problems)
        else:
            definition.pop("export", None)
        imports = []
        receivers = self._receivers()
        steps_written = cast(list[Mapping[str, object]], written.get("imports") or [])
        for index, (step, step_written) in enumerate(zip(doc.imports, steps_written,
                                                         strict=True)):
            resolved = dict(step_written)
            resolved["connection_id"] = _connection_id(
                session, account, step.connection, receivers,
                f"imports.{index}.connection", problems)
            imports.append(resolved)
        definition["imports"] = imports
        if problems or integration is None:
            return problems
        _fill(flow, definition, doc, integration)
        return []

    def _resolved_export(self, session: Session, account: str, doc: FlowDocument,
                         written: Mapping[str, object],
                         problems: list[FieldProblem]) -> dict[str, object]:
        """The export as written, with its connection's id; its upload or path checked."""
        assert doc.export is not None
        export = dict(cast(Mapping[str, object], written["export"]))
        export_connection = self._export_connection(session, account, doc, problems)
        if export_connection is not None:
            export["connection_id"] = export_connection
        problems += doc.export.account_problems(SourceAccess(
            self.access, lambda upload_id: _has_upload(session, account, upload_id)))
        return export

    def _export_connection(self, session: Session, account: str, doc: FlowDocument,
                           problems: list[FieldProblem]) -> str | None:
        """The id of the connection the export names, resolved against the application
        that exports that kind (only when that application has connections)."""
        assert doc.export is not None
        exporter = self.registry.exporter(doc.export.type)
        name = doc.export.connection_name()
        if not is_connectable(exporter) or name is None:
            return None
        return _connection_id(session, account, name, frozenset({exporter.key}),
                              "export.connection", problems)

    def _receivers(self) -> frozenset[str]:
        """The applications an import's connection may be made to: those that open sinks."""
        return frozenset(app.key for app in self.registry.all()
                         if _opens_sinks(self.registry, app.key))

    def _save(self, session: Session, flow: Flow) -> None:
        try:
            session.flush()
        except IntegrityError:
            raise ValidationFailed([FieldProblem("name", "this flow name was just taken")]) \
                from None
        session.execute(delete(FlowConnection).where(FlowConnection.flow_id == flow.id))
        used = {str(step["connection_id"]) for step in flow.definition.get("imports", [])}
        export = flow.definition.get("export") or {}
        if export.get("connection_id"):
            used.add(export["connection_id"])
        used |= lookup_connection_ids(flow.definition)
        for connection_id in used:
            session.add(FlowConnection(flow_id=flow.id, connection_id=connection_id))
            if session.get(IntegrationConnection, (flow.integration_id, connection_id)) is None:
                session.add(IntegrationConnection(integration_id=flow.integration_id,
                                                  connection_id=connection_id))

    def _public(self, session: Session, flow: Flow) -> FlowPublic:
        integration = session.get(Integration, flow.integration_id)
        last = session.scalar(select(Run).where(Run.flow_id == flow.id)
                              .order_by(Run.created_at.desc()).limit(1))
        return public_flow(flow, integration.name if integration else "", last)


def _fill(flow: Flow, definition: dict[str, object], doc: FlowDocument,
          integration: Integration) -> None:
    flow.integration_id = integration.id
    flow.name = doc.name.strip()
    flow.name_key = name_key(flow.name)
    flow.enabled = bool(definition["enabled"])
    definition["integration"] = integration.name
    flow.definition = definition
    flow.schedule_cron = doc.schedule.cron if doc.schedule else None
    flow.schedule_timezone = doc.schedule.timezone if doc.schedule else None
    flow.next_run_at = next_fire(flow)


def _refuse_unfinished(flow: Flow, doing: str) -> None:
    missing = stored_flow_document(document(flow.definition)).missing_parts()
    if missing:
        raise Conflict(f"The flow '{flow.name}' is not finished: add {' and '.join(missing)} "
                       f"in the flow builder before you {doing}.")


def _has_upload(session: Session, account_id: str, upload_id: str) -> bool:
    upload = session.get(Upload, upload_id)
    return upload is not None and upload.account_id == account_id


def _opens_sinks(registry: Registry, key: str) -> bool:
    try:
        registry.sink(key)
    except CannotDoThat:
        return False
    return True


def next_fire(flow: Flow, after: datetime | None = None) -> datetime | None:
    """The next time the flow's schedule fires, in UTC (the cron is read in its time zone)."""
    if not flow.schedule_cron or not flow.enabled:
        return None
    from croniter import croniter

    zone = ZoneInfo(flow.schedule_timezone or "UTC")
    start = (after or utcnow()).astimezone(zone)
    fire: datetime = croniter(flow.schedule_cron, start).get_next(datetime)
    return fire.astimezone(UTC)


def _connection_id(session: Session, account_id: str, name_or_id: str,
                   accepts: frozenset[str], field: str,
                   problems: list[FieldProblem]) -> str | None:
    """The id of the connection named (or given by id) in the account, when it is a
    connection of an application in ``accepts`` (keys); else a problem at ``field``."""
    connection = session.get(Connection, name_or_id)
    if connection is None or connection.account_id != account_id:
        connection = session.scalar(select(Connection).where(
            Connection.account_id == account_id, Connection.name_key == name_key(name_or_id)))
    if connection is None:
        problems.append(FieldProblem(field, f"no connection named '{name_or_id}'; create it "
                                            "first (Resources > Connections)"))
        return None
    if connection.application not in accepts:
        choices = " or ".join(sorted(accepts))
        problems.append(FieldProblem(field, f"'{connection.name}' is a {connection.application}"
                                            f" connection; choose a {choices} connection"))
        return None
    return connection.id


def _owned(session: Session, principal: Principal, flow_id: str) -> Flow:
    flow = session.get(Flow, flow_id)
    if flow is None or flow.account_id != principal.account_id:
        raise NotFound(f"No flow with id '{flow_id}' in your account.")
    return flow


def _owned_run(session: Session, principal: Principal, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None or run.account_id != principal.account_id:
        raise NotFound(f"No run with id '{run_id}' in your account.")
    return run


def flows_using(session: Session, connection: Connection) -> list[str]:
    """For deleting a connection: the flows that use it, by name."""
    names = session.scalars(select(Flow.name).join(
        FlowConnection, FlowConnection.flow_id == Flow.id)
        .where(FlowConnection.connection_id == connection.id).order_by(Flow.name))
    return [f"flow '{name}' uses it" for name in names]


def _same_key_field(session: Session, run: Run) -> None:
    """A run resumes with the flow as it was when it started: not once the flow's key field
    changed since (its snapshots were emptied for the new keys, and the run would fill them
    with the old ones: the next run then counted every record's key as deleted)."""
    flow = session.get(Flow, run.flow_id)
    definition = run.definition or {}
    diffed = any(is_diffed(step) for step in definition.get("imports", []))
    if flow is None or not diffed or _key_field(definition) == _key_field(flow.definition):
        return  # (a flow of sync: all imports has no snapshot: its run resumes as it began)
    raise Conflict(f"Run {run.id} cannot be resumed: the flow's key_field changed since it "
                   f"started ({_key_field(definition)!r}, now "
                   f"{_key_field(flow.definition)!r}), and its snapshots were emptied for the "
                   "new keys. Run the flow again instead.")


def _key_field(definition: Mapping[str, Any]) -> object:
    """The flow's export key field (what its diff snapshots are keyed by)."""
    export = definition.get("export")
    return export.get("key_field") if isinstance(export, Mapping) else None

"""Preview (dry run): the exact calls the first records would become, and each record's
errors. Nothing is sent and nothing is stored. Each record takes a run's own record step
(``runs.producer.RecordStep``: lookups, filters, mapping, messageId, JSON, size check), so
the calls and the errors shown are exactly those a run would make; a record's ``data`` shows
the looked-up fields (the previewed records' keys are looked up at once, for real).

An import with ``sync: changed`` or ``new`` (``runs.diff``): each of its calls says how it
compares with the import's snapshot (``sync``: new, changed or unchanged) and whether a run
would send it (``sends``); the previewed keys are looked up in the snapshot at once. An
unsaved flow has no snapshot: every record is new.

A preview never fails for one record: whatever goes wrong with a record (unreadable, past a
cap, a filter or mapping that raises, a call that cannot be written) is that record's error. A
source that cannot be read at all (a missing file, a bad option, a failing query) is a 422
naming the export; a database that cannot be reached stays a 502 (try again later)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from segbridge.accounts.roles import Permission, require
from segbridge.accounts.service import Principal
from segbridge.core.errors import FatalError, FieldProblem, RetriableError, ValidationFailed
from segbridge.exports.contracts import Export, SourceRecord
from segbridge.exports.errors import ExportError
from segbridge.flows.views import PreviewPublic
from segbridge.runs.diff import SyncMode, Verdict, is_sent, key_hash, verdict, version_hasher
from segbridge.runs.lookups import LookupSteps
from segbridge.runs.message_ids import MessageIds
from segbridge.runs.producer import CompiledImport, RecordStep, Refusal, sync_mode

Diffed = list[tuple[dict[str, Any], CompiledImport, Any, int]]
"""A preview's diffed calls: the call as shown, its import, its key and its version."""

if TYPE_CHECKING:
    from segbridge.runtime import Runtime

log = logging.getLogger(__name__)


def preview(runtime: Runtime, principal: Principal, flow_id: str | None,
            doc: dict[str, Any] | None, limit: int) -> PreviewPublic:
    """The calls the first ``limit`` records would become, and their errors; nothing is sent.
    A record-wide error names no import: show it with ``exclude_unset``, as the API does."""
    from segbridge.mapping import compile_expression, compile_mapping
    from segbridge.runs.export_factory import preview_export

    require(principal, Permission.PREVIEW)
    definition = _definition(runtime, principal, flow_id, doc)
    flow_key = flow_id or "preview"
    try:
        export = preview_export(runtime.db, runtime.vault, runtime.settings,
                                principal.account_id, definition["export"],
                                registry=runtime.registry)
    except ExportError as exc:
        raise _unreadable(exc) from None
    steps = definition.get("steps", [])
    filters = [compile_expression(s["filter"]["expression"]) for s in steps if "filter" in s]
    imports = [_compiled(step, flow_key, compile_mapping) for step in definition["imports"]]
    lookups = _lookups(runtime, principal, steps)
    try:
        step = RecordStep(filters, definition["export"].get("key_field"), lookups)
        records = list(_read(export, limit))
        _look_up(lookups, records)
        diffed: Diffed = []
        entries = [_entry(step, imports, record, diffed) for record in records]
    finally:
        lookups.close()
    _compare(runtime, flow_id, diffed)
    return PreviewPublic.model_validate({"records": entries, "sent": False})


def _lookups(runtime: Runtime, principal: Principal,
             steps: Sequence[dict[str, Any]]) -> LookupSteps:
    """The document's lookups, opened in the principal's account; one that cannot be opened
    is a 422 naming its step."""
    from segbridge.runs.lookup_factory import open_lookup_steps

    try:
        return open_lookup_steps(runtime.db, runtime.vault, runtime.settings,
                                 runtime.registry, principal.account_id, steps)
    except FatalError as exc:
        raise ValidationFailed([FieldProblem("steps", exc.message)]) from None


def _look_up(lookups: LookupSteps, records: list[SourceRecord]) -> None:
    """The records' keys looked up at once; a lookup that fails is a 422 naming it (a
    database that cannot be reached: 502, try again later)."""
    if not lookups:
        return
    for one in lookups.steps:
        one.retry_delays = ()  # a preview answers now: no waits between tries
    try:
        lookups.prepare(records)
    except RetriableError:
        raise
    except FatalError as exc:
        raise ValidationFailed([FieldProblem("steps", exc.message)]) from None


def _entry(step: RecordStep, imports: Sequence[CompiledImport], record: SourceRecord,
           diffed: Diffed | None = None) -> dict[str, Any]:
    """What the producer's record step makes of one record: its calls, or its errors."""
    entry: dict[str, Any] = {"position": record.position, "ref": record.ref,
                             "data": record.data, "calls": [], "errors": [], "ignored": False}
    if record.data is None:
        entry["errors"].append(_error(step.unreadable(record)))
        return entry
    found = step.looked_up(record.data)
    verdict = step.passes(record.data) if found is True else found
    if isinstance(verdict, Refusal):
        entry["errors"].append(_error(verdict))
    elif not verdict:
        entry["ignored"] = True
    else:
        for imp in imports:
            _add_call(entry, step, imp, record.position, record.data, diffed)
    return entry


def _compiled(step: dict[str, Any], flow_key: str, compile_mapping: Any) -> CompiledImport:
    """An import as a run compiles it (a diffed one with its record versions)."""
    sync = SyncMode(step.get("sync", SyncMode.ALL))
    return CompiledImport(step["name"], compile_mapping(step["call"], step["mapping"]),
                          MessageIds(flow_key, step["name"], step["call"]), sync,
                          version_hasher(step["call"], step["mapping"])
                          if sync is not SyncMode.ALL else None)


def _add_call(entry: dict[str, Any], step: RecordStep, imp: CompiledImport, position: int,
              data: dict[str, Any], diffed: Diffed | None) -> None:
    try:
        outcome = step.call(imp, position, data) if sync_mode(imp) is SyncMode.ALL \
            else step.diff_call(imp, position, data)
    except Exception as exc:  # one record's problem, never the preview's
        outcome = step.unmappable(imp, exc)
    if isinstance(outcome, Refusal):
        entry["errors"].append(_error(outcome))
        return
    shown = {"import": imp.name, "call": outcome[0]}
    entry["calls"].append(shown)
    if len(outcome) == 4 and diffed is not None:
        diffed.append((shown, imp, data[step.key_field or ""], outcome[3]))


def _compare(runtime: Runtime, flow_id: str | None, diffed: Diffed) -> None:
    """Each diffed call's verdict against its import's snapshot (compared at once)."""
    from segbridge.runs.diff_store import DiffStore

    store = DiffStore(runtime.db)
    for name in {imp.name for _shown, imp, _key, _call in diffed}:
        calls = [one for one in diffed if one[1].name == name]
        snapshot = store.find_snapshot(flow_id, name) if flow_id is not None else None
        differences = store.compare(snapshot, [key_hash(key) for *_rest, key, _version in calls],
                                    [version for *_rest, version in calls]) \
            if snapshot is not None else dict.fromkeys(range(len(calls)))
        for index, (shown, imp, key, version) in enumerate(calls):
            found = verdict(differences, index)
            shown["sync"], shown["sends"] = found.value, is_sent(imp.sync, found)
            if found is Verdict.CHANGED:  # the messageId a run gives it
                shown["call"]["messageId"] = imp.ids.by_version(key, version,
                                                                differences[index])


def _error(refusal: Refusal) -> dict[str, Any]:
    """A refusal as the preview shows it (a refusal for one import names it)."""
    if refusal.import_name is None:
        return {"step": refusal.step, "field": refusal.field, "reason": refusal.reason}
    return {"step": refusal.step, "import": refusal.import_name, "field": refusal.field,
            "reason": refusal.reason}


def _read(export: Export, limit: int) -> Iterator[SourceRecord]:
    """The first ``limit`` records; a source that cannot be read is a 422 naming it."""
    records = export.records(0)
    count = 0
    try:
        while count < limit:
            try:
                record = next(records)
            except StopIteration:
                return
            except ExportError as exc:
                raise _unreadable(exc) from None
            except (RecursionError, TypeError, ValueError, UnicodeError) as exc:
                log.exception("preview: the export failed after %d records", count)
                raise ValidationFailed([FieldProblem(
                    "export", f"the source cannot be read after {count} records "
                              f"({type(exc).__name__}); the server log has the details")]) \
                    from None
            count += 1
            yield record
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()


def _unreadable(exc: ExportError) -> ValidationFailed:
    return ValidationFailed([FieldProblem("export", exc.message)])


def _definition(runtime: Runtime, principal: Principal, flow_id: str | None,
                doc: dict[str, Any] | None) -> dict[str, Any]:
    """The document to preview: it may be unfinished (the flow builder shows a source's
    records before any import exists), but it needs its export."""
    if doc is not None:
        from segbridge.flows.document import parse_flow_document

        parse_flow_document(doc, unfinished=True)
        definition = doc
    elif flow_id is None:
        raise ValidationFailed([FieldProblem("flow", "give a flow id or a flow document")])
    else:
        with runtime.db.session() as session:
            from segbridge.flows.service import _owned

            definition = dict(_owned(session, principal, flow_id).definition)
    if definition.get("export") is None:
        raise ValidationFailed([FieldProblem("export", "add a source to preview its records")])
    definition.setdefault("imports", [])
    return definition

"""Preview (dry run): the exact calls the first records would become, and each record's
errors. Nothing is sent and nothing is stored.

A preview never fails for one record: whatever goes wrong with a record (unreadable, past a
cap, a filter or mapping that raises, a call that cannot be written) is that record's error. A
source that cannot be read at all (a missing file, a bad option, a failing query) is a 422
naming the export; a database that cannot be reached stays a 502 (try again later)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from segbridge.accounts.roles import Permission, require
from segbridge.accounts.service import Principal
from segbridge.apps.segment.limits import MAX_CALL_BYTES
from segbridge.core.errors import FieldProblem, ValidationFailed
from segbridge.exports.contracts import Export, MappingError, SourceRecord
from segbridge.exports.errors import ExportError
from segbridge.runs.message_ids import MessageIds

if TYPE_CHECKING:
    from segbridge.runtime import Runtime

log = logging.getLogger(__name__)


def preview(runtime: Runtime, principal: Principal, flow_id: str | None,
            doc: dict[str, Any] | None, limit: int) -> dict[str, Any]:
    from segbridge.mapping import compile_expression, compile_mapping
    from segbridge.runs.export_factory import preview_export

    require(principal, Permission.PREVIEW)
    definition = _definition(runtime, principal, flow_id, doc)
    flow_key = flow_id or "preview"
    try:
        export = preview_export(runtime.db, runtime.vault, runtime.settings,
                                principal.account_id, definition["export"])
    except ExportError as exc:
        raise _unreadable(exc) from None
    filters = [compile_expression(s["filter"]["expression"]) for s in definition.get("steps", [])]
    imports = [(step, compile_mapping(step["call"], step["mapping"]),
                MessageIds(flow_key, step["name"], step["call"])) for step in definition["imports"]]
    key_field = definition["export"].get("key_field")
    records: list[dict[str, Any]] = []
    for record in _read(export, limit):
        entry: dict[str, Any] = {"position": record.position, "ref": record.ref,
                                 "data": record.data, "calls": [], "errors": [], "ignored": False}
        records.append(entry)
        if record.data is None:
            entry["errors"].append({"step": "export", "field": record.field,
                                    "reason": record.error})
            continue
        try:
            if not all(keep(record.data) for keep in filters):
                entry["ignored"] = True
                continue
        except Exception as exc:
            entry["errors"].append({"step": "filter", "field": None, "reason": str(exc)})
            continue
        for step, map_record, ids in imports:
            try:
                _preview_call(entry, step, map_record, ids, record.data, record.position,
                              key_field)
            except Exception as exc:  # one record's problem, never the preview's
                entry["errors"].append({"step": "map", "import": step["name"], "field": None,
                                        "reason": _unexpected(exc)})
    return {"records": records, "sent": False}


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


def _unexpected(exc: Exception) -> str:
    if isinstance(exc, RecursionError) or "ecursion" in str(exc):
        return "the record cannot be mapped to a call: it is nested too deep"
    return f"the record cannot be mapped to a call: {type(exc).__name__}: {exc}"


def _preview_call(entry: dict[str, Any], step: dict[str, Any], map_record: Any,
                  ids: MessageIds, data: dict[str, Any], position: int,
                  key_field: str | None) -> None:
    try:
        call = map_record(data)
    except MappingError as exc:
        entry["errors"].append({"step": "map", "import": step["name"], "field": exc.field,
                                "reason": exc.reason})
        return
    key = data.get(key_field) if key_field else None
    call["messageId"] = ids.by_key(key) if key not in (None, "") else ids.by_position(position,
                                                                                         data)
    size = len(orjson.dumps(call, default=str))
    if size > MAX_CALL_BYTES:
        entry["errors"].append({"step": "import", "import": step["name"], "field": None,
                                "reason": f"the call is {size:,} bytes; at most "
                                          f"{MAX_CALL_BYTES:,} are accepted"})
        return
    entry["calls"].append({"import": step["name"], "call": call})


def _definition(runtime: Runtime, principal: Principal, flow_id: str | None,
                doc: dict[str, Any] | None) -> dict[str, Any]:
    if doc is not None:
        from segbridge.flows.definition import validate_definition

        problems = validate_definition(doc)
        if problems:
            raise ValidationFailed(problems)
        return doc
    if flow_id is None:
        raise ValidationFailed([FieldProblem("flow", "give a flow id or a flow document")])
    with runtime.db.session() as session:
        from segbridge.flows.service import _owned

        return dict(_owned(session, principal, flow_id).definition)

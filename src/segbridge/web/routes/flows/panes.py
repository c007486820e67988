"""The builder's other panes: filters (with a preview of the records they keep), the schedule
(presets, time zone, next run times), destinations (add: on to the mapping, or create a Segment
connection in place; an existing one: rename, change connection, remove)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from segbridge.apps.segment.limits import CALL_TYPES
from segbridge.core.clock import utcnow
from segbridge.core.errors import (
    FieldProblem,
    SegbridgeError,
    ValidationFailed,
)
from segbridge.flows.views import FlowPublic
from segbridge.web import flow_editing as edit
from segbridge.web.auth import (
    CheckedForm,
    MayEditFlows,
    MayPreview,
    MayRunFlows,
    SignedIn,
    WebUser,
    form_text,
    runtime_of,
)
from segbridge.web.forms import FieldErrors
from segbridge.web.rendering import render
from segbridge.web.routes.flows.common import (
    LIST_PATH,
    Notice,
    after_save,
    builder_url,
    connection_name,
    create_connection,
    find_flow,
    find_flow_part,
    pane_sample,
    problems_at,
    save_removal,
    show_pane,
)

router = APIRouter(include_in_schema=False)

FILTER_PREVIEW_SIZE = 10
SYNC_CHOICES: tuple[tuple[str, str, str], ...] = (
    ("all", "Every record", "Each run sends every record it reads."),
    ("changed", "New or changed records",
     "A record is sent when its key was never sent, or when its call differs from the one "
     "sent last time. Needs the source's key field."),
    ("new", "New records only",
     "A record is sent only when its key was never sent. Needs the source's key field."),
)
DELETED_CHOICES: tuple[tuple[str, str, str], ...] = (
    ("", "Nothing", "A key no longer found is only counted (deleted)."),
    ("track", "A track call",
     "Sends this event once for each key no longer found, with the identity last sent for it "
     "and the key in its properties."),
    ("identify", "An identify call",
     "Sends an identify once for each key no longer found, with the identity last sent for "
     "it, the key and deleted: true in its traits."),
)
DELETED_EVENT = "Record Deleted"  # a track's event until one is named
IMPORT_FIELDS = ("name", "connection", "sync", "deleted", "deleted_event")
CALL_HELP: Mapping[str, str] = {
    "identify": "Who a user is: their userId and traits (name, email, plan).",
    "track": "What a user did: an event name and its properties (Order Completed).",
    "page": "A page a user viewed on a website, with its name and properties.",
    "screen": "A screen a user viewed in a mobile app.",
    "group": "The company or group a user belongs to, with its traits.",
    "alias": "Joins two ids of one user (a previousId becomes the userId).",
}
assert set(CALL_HELP) == set(CALL_TYPES)


# ---- filters ---------------------------------------------------------------------------------

def _filter_fields(count: int) -> list[str]:
    return [f"steps.{index}.filter.expression" for index in range(count)]


def _filter_problems(problems: list[FieldProblem], doc: dict[str, Any]) -> list[FieldProblem]:
    """Filter N is step N + the number of lookups (they come first): its problems named as
    the pane's filter N."""
    shift = len(edit.lookups_of(doc))
    found = []
    for problem in problems:
        parts = problem.field.split(".", 2)
        if shift and len(parts) == 3 and parts[0] == "steps" and parts[1].isdigit() \
                and parts[2].startswith("filter"):
            problem = FieldProblem(f"steps.{int(parts[1]) - shift}.{parts[2]}", problem.message)
        found.append(problem)
    return found


def _steps_context(request: Request, user: WebUser, flow: FlowPublic, expressions: list[str],
                   errors: FieldErrors, notice: Notice | None, *,
                   sample_doc: dict[str, Any] | None = None, sample: bool = True,
                   ) -> dict[str, Any]:
    result, problems = pane_sample(request, user, flow, FILTER_PREVIEW_SIZE, doc=sample_doc,
                                   wanted=sample)
    return {"expressions": expressions, "errors": errors, "pane_notice": notice,
            "preview": result, "problems": problems,
            "has_source": flow.definition.export is not None}


@router.get(LIST_PATH + "/{flow_id}/steps")
def steps_pane(request: Request, flow_id: str, user: SignedIn, saved: str = "") -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    notice = Notice("ok", "Filters saved.") if saved else None
    context = _steps_context(request, user, flow, edit.filters_of(flow.definition.as_written()),
                             FieldErrors.none(), notice)
    return show_pane(request, user, flow, "flows/pane_steps.html", context)


def _posted_filters(form: FormData) -> list[str]:
    expressions = [value for value in form.getlist("expression") if isinstance(value, str)]
    removed = form_text(form, "remove")
    if removed.isdigit() and int(removed) < len(expressions):
        del expressions[int(removed)]
    return [text.strip() for text in expressions if text.strip()]


@router.post(LIST_PATH + "/{flow_id}/steps/preview")
def preview_steps(request: Request, flow_id: str, user: MayPreview,
                  form: CheckedForm) -> Response:
    """The sample records through the filters as typed (nothing is saved)."""
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    expressions = _posted_filters(form)
    doc = edit.with_filters(flow.definition.as_written(), expressions)
    context = _steps_context(request, user, flow, expressions, FieldErrors.none(), None,
                             sample_doc=doc)
    problems = _filter_problems(context["problems"], doc)
    errors = FieldErrors.of(problems, _filter_fields(len(expressions)))
    return render("flows/_steps_preview.html", user=user, flow=flow,
                  **{**context, "errors": errors})


@router.post(LIST_PATH + "/{flow_id}/steps")
def save_steps(request: Request, flow_id: str, user: MayEditFlows,
               form: CheckedForm) -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    expressions = _posted_filters(form)
    doc = edit.with_filters(flow.definition.as_written(), expressions)
    try:
        flow = runtime_of(request).flows.update(user.principal, flow_id, doc, unfinished=True)
    except ValidationFailed as exc:
        errors = FieldErrors.of(_filter_problems(exc.problems, doc),
                                _filter_fields(len(expressions)))
        context = _steps_context(request, user, flow, expressions, errors, None, sample=False)
        return show_pane(request, user, flow, "flows/pane_steps.html", context, status=422)
    redirect = after_save(request, f"{builder_url(flow_id)}/steps")
    if redirect is not None:
        return redirect
    context = _steps_context(request, user, flow, expressions, FieldErrors.none(),
                             Notice("ok", "Filters saved."))
    return show_pane(request, user, flow, "flows/pane_steps.html", context, board=True)


# ---- schedule --------------------------------------------------------------------------------

@dataclass(frozen=True)
class NextRuns:
    times: list[str]
    problem: str
    zone: str


def _next_runs(cron: str, zone: str) -> NextRuns:
    if not cron.strip():
        return NextRuns([], "", zone)
    try:
        times = edit.next_runs(cron.strip(), zone or "UTC", utcnow())
    except ValueError as exc:
        return NextRuns([], str(exc), zone)
    return NextRuns([t.strftime("%a %d %b %Y, %H:%M") for t in times], "", zone or "UTC")


def _schedule_context(cron: str, zone: str, errors: FieldErrors,
                      notice: Notice | None) -> dict[str, Any]:
    return {"values": {"schedule.cron": cron, "schedule.timezone": zone or "UTC"},
            "errors": errors, "pane_notice": notice, "presets": edit.CRON_PRESETS,
            "zones": edit.time_zones(), "next": _next_runs(cron, zone or "UTC")}


@router.get(LIST_PATH + "/{flow_id}/schedule")
def schedule_pane(request: Request, flow_id: str, user: SignedIn, saved: str = "") -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    schedule = flow.definition.schedule
    notice = Notice("ok", "Schedule saved.") if saved else None
    context = _schedule_context(schedule.cron if schedule else "",
                                schedule.timezone if schedule else "UTC", FieldErrors.none(),
                                notice)
    return show_pane(request, user, flow, "flows/pane_schedule.html", context)


@router.get(LIST_PATH + "/{flow_id}/schedule/next")
def schedule_next(request: Request, flow_id: str, user: SignedIn,
                  cron: Annotated[str, Query(alias="schedule.cron")] = "",
                  timezone: Annotated[str, Query(alias="schedule.timezone")] = "UTC",
                  ) -> Response:
    """The next run times of a cron as typed (refreshed while it changes)."""
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    return render("flows/_next_runs.html", next=_next_runs(cron, timezone))


@router.post(LIST_PATH + "/{flow_id}/schedule")
def save_schedule(request: Request, flow_id: str, user: MayEditFlows,
                  form: CheckedForm) -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    cron, zone = form_text(form, "schedule.cron"), form_text(form, "schedule.timezone")
    doc = edit.with_schedule(flow.definition.as_written(), cron, zone)
    try:
        flow = runtime_of(request).flows.update(user.principal, flow_id, doc, unfinished=True)
    except ValidationFailed as exc:
        errors = problems_at(exc, ("schedule.cron", "schedule.timezone"))
        return show_pane(request, user, flow, "flows/pane_schedule.html",
                     _schedule_context(cron, zone, errors, None), status=422)
    redirect = after_save(request, f"{builder_url(flow_id)}/schedule")
    if redirect is not None:
        return redirect
    text = "Schedule saved." if cron.strip() else "Schedule removed: the flow runs only by hand."
    return show_pane(request, user, flow, "flows/pane_schedule.html",
                 _schedule_context(cron, zone, FieldErrors.none(), Notice("ok", text)),
                 board=True)


# ---- destinations ----------------------------------------------------------------------------

def _segment_connections(request: Request, user: WebUser) -> list[Any]:
    return [c for c in runtime_of(request).connections.list_all(user.principal)
            if c.application == "segment"]


@router.get(LIST_PATH + "/{flow_id}/imports/new")
def destination_pane(request: Request, flow_id: str, user: SignedIn, name: str = "",
                     connection: str = "", call: str = "track") -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    connections = _segment_connections(request, user)
    chosen = next((c for c in connections if connection in (c.id, c.name)), None)
    notice = Notice("ok", f"Connection '{chosen.name}' chosen.") if chosen else None
    context = {"values": {"name": name, "connection": chosen.id if chosen else "",
                          "call": call if call in CALL_HELP else "track"},
               "connections": connections, "calls": CALL_HELP, "pane_notice": notice,
               "errors": FieldErrors.none()}
    return show_pane(request, user, flow, "flows/pane_destination.html", context)


@router.get(LIST_PATH + "/{flow_id}/imports/new/connection")
def destination_new_connection(request: Request, flow_id: str, user: MayEditFlows,
                               name: str = "", call: str = "track") -> Response:
    """Create connection from the destination pane: the Create connection pane, which comes
    back here (what was chosen kept) with the new connection chosen."""
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    back = f"{builder_url(flow.id)}/imports/new?" + urlencode({"name": name, "call": call})
    return create_connection(request, "segment", back)


def _import_context(request: Request, user: WebUser, flow: FlowPublic, index: int,
                    values: dict[str, str], errors: FieldErrors,
                    notice: Notice | None) -> dict[str, Any]:
    step = edit.imports_of(flow.definition.as_written())[index]
    return {"index": index, "step": step, "values": values, "errors": errors,
            "pane_notice": notice, "connections": _segment_connections(request, user),
            "calls": CALL_HELP, "syncs": SYNC_CHOICES, "deletions": DELETED_CHOICES,
            "key_field": flow.definition.export.key_field if flow.definition.export else None}


def _import_values(step: Any) -> dict[str, str]:
    """A destination's form values: its name, connection, sync and call for deleted keys."""
    deleted = step.deleted
    return {"name": step.name, "connection": step.connection, "sync": step.sync,
            "deleted": deleted.call if deleted is not None else "",
            "deleted_event": (deleted.event if deleted is not None else None) or DELETED_EVENT}


def _with_deleted(doc: dict[str, Any], index: int, choice: str,
                  event: str) -> dict[str, Any]:
    """The destination's call for deleted keys as chosen in the pane ("": none); constants
    written in the flow's YAML are kept while the call type stays."""
    imports = list(doc.get("imports") or [])
    step = dict(imports[index])
    before = step.pop("deleted", None)
    before = before if isinstance(before, Mapping) else {}
    if choice == "track":
        kept = {"properties": before["properties"]} if before.get("call") == "track" and \
            "properties" in before else {}
        step["deleted"] = {"call": "track", "event": event.strip(), **kept}
    elif choice == "identify":
        traits = before.get("traits") if before.get("call") == "identify" else None
        step["deleted"] = {"call": "identify", "traits": traits or {"deleted": True}}
    elif choice:
        step["deleted"] = {"call": choice}  # (refused with the choices by the document)
    imports[index] = step
    return {**doc, "imports": imports}


def _import_problems(problems: list[FieldProblem], index: int) -> FieldErrors:
    """The document's problems at the pane's fields (the deleted call's event: its field)."""
    moved = []
    for one in problems:
        name = one.field.removeprefix(f"imports.{index}.")
        if name.startswith("deleted."):
            name = "deleted_event" if name == "deleted.event" else "deleted"
        moved.append(FieldProblem(name, one.message))
    return FieldErrors.of(moved, IMPORT_FIELDS)


def _find_import(request: Request, user: WebUser, flow_id: str,
                 index: int) -> FlowPublic | Response:
    """The flow when it has destination ``index``, else the Not found page."""
    return find_flow_part(request, user, flow_id, index,
                          count=lambda flow: len(flow.definition.imports), noun="destination")


@router.get(LIST_PATH + "/{flow_id}/imports/{index}")
def import_pane(request: Request, flow_id: str, index: int, user: SignedIn,
                saved: str = "", connection: str = "") -> Response:
    flow = _find_import(request, user, flow_id, index)
    if isinstance(flow, Response):
        return flow
    values = _import_values(flow.definition.imports[index])
    if connection:
        values["connection"] = connection_name(request, user, connection)
    notice = Notice("ok", "Destination saved.") if saved else None
    context = _import_context(request, user, flow, index, values, FieldErrors.none(), notice)
    return show_pane(request, user, flow, "flows/pane_import.html", context)


@router.post(LIST_PATH + "/{flow_id}/imports/{index}")
def save_import(request: Request, flow_id: str, index: int, user: MayEditFlows,
                form: CheckedForm) -> Response:
    flow = _find_import(request, user, flow_id, index)
    if isinstance(flow, Response):
        return flow
    values = {**_import_values(flow.definition.imports[index]),
              "name": form_text(form, "name"), "connection": form_text(form, "connection"),
              "sync": form_text(form, "sync") or "all"}
    doc = edit.with_import_changed(flow.definition.as_written(), index, name=values["name"],
                                   connection=values["connection"], sync=values["sync"])
    if "deleted" in form:  # (a form without the choice leaves the call as it is)
        values["deleted"] = form_text(form, "deleted")
        values["deleted_event"] = form_text(form, "deleted_event")
        doc = _with_deleted(doc, index, values["deleted"], values["deleted_event"])
    try:
        flow = runtime_of(request).flows.update(user.principal, flow_id, doc, unfinished=True)
    except ValidationFailed as exc:
        errors = _import_problems(exc.problems, index)
        context = _import_context(request, user, flow, index, values, errors, None)
        return show_pane(request, user, flow, "flows/pane_import.html", context, status=422)
    redirect = after_save(request, f"{builder_url(flow_id)}/imports/{index}")
    if redirect is not None:
        return redirect
    context = _import_context(request, user, flow, index, values, FieldErrors.none(),
                              Notice("ok", "Destination saved."))
    return show_pane(request, user, flow, "flows/pane_import.html", context, board=True)


@router.post(LIST_PATH + "/{flow_id}/imports/{index}/snapshot/reset")
def reset_import_snapshot(request: Request, flow_id: str, index: int, user: MayRunFlows,
                          _: CheckedForm) -> Response:
    """Forget what a destination with a sync of changed or new records sent: its next run
    sends every record again (the pane asks to confirm first)."""
    flow = _find_import(request, user, flow_id, index)
    if isinstance(flow, Response):
        return flow
    step = flow.definition.imports[index]
    values = _import_values(step)
    try:
        reset = runtime_of(request).flows.reset_snapshot(user.principal, flow_id, step.name,
                                                         confirm=True)
    except SegbridgeError as exc:
        context = _import_context(request, user, flow, index, values, FieldErrors.none(),
                                  Notice("error", exc.message))
        return show_pane(request, user, flow, "flows/pane_import.html", context,
                         status=exc.http_status)
    notice = Notice("ok", f"Forgot {reset.forgotten:,} sent record(s): the next run sends "
                          "every record again.")
    context = _import_context(request, user, flow, index, values, FieldErrors.none(), notice)
    return show_pane(request, user, flow, "flows/pane_import.html", context)


@router.post(LIST_PATH + "/{flow_id}/imports/{index}/delete")
def remove_import(request: Request, flow_id: str, index: int, user: MayEditFlows,
                  _: CheckedForm) -> Response:
    flow = _find_import(request, user, flow_id, index)
    if isinstance(flow, Response):
        return flow
    doc = edit.without_import(flow.definition.as_written(), index)
    return save_removal(request, user, flow, doc, "removed")

"""Runs: the account's latest runs, a flow's runs (with Run now), and one run with its live
progress and its record errors, which a user may resolve or retry (editing a record first).

A run that is still going refreshes its status block every two seconds, and its errors with
it (out of band), until it ends; the last refresh also brings the errors' controls and takes
the Cancel button away. The errors form is a plain form (no script needed): its Resolve and
Retry buttons post the chosen errors, and each record's data from its textarea; a record whose
text changed is sent as an edit, after it parsed as a JSON object (else 422, nothing changed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from segbridge.core.clock import utcnow
from segbridge.core.errors import Conflict, NotFound
from segbridge.flows.views import FlowPublic, RecordErrorPublic, RunPublic
from segbridge.web.auth import (
    CheckedForm,
    MayHandleErrors,
    MayRunFlows,
    SignedIn,
    WebUser,
    form_text,
    runtime_of,
)
from segbridge.web.rendering import htmx_target, pretty_json, render
from segbridge.web.results import SANDBOX_SOURCES, is_local_sandbox

router = APIRouter(include_in_schema=False)
ERRORS_SHOWN = 200
RUNS_SHOWN = 50
STATUS_TARGET = "run-status"
ERROR_FIELD = "error"
DATA_FIELD = "data-"
OBJECT_HINT = 'Enter the record as a JSON object, e.g. {"order_id": "17", "email": "a@b.c"}.'


@dataclass
class ErrorsForm:
    """What the errors form shows again after a refused action: the user's choices and text."""

    selected: set[str] = field(default_factory=set)
    drafts: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DebuggerLink:
    url: str
    text: str


# ---- pages ---------------------------------------------------------------------------------


@router.get("/runs")
def run_list(request: Request, user: SignedIn) -> Response:
    runs = runtime_of(request).flows.recent_runs(user.principal)
    return render("runs/list.html", user=user, nav="runs", runs=runs,
                  notice=_notice(request), problem=None)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, user: SignedIn) -> Response:
    try:
        run = runtime_of(request).flows.get_run(user.principal, run_id)
    except NotFound as exc:
        return _not_found(user, exc)
    if htmx_target(request) == STATUS_TARGET:
        errors = _errors(request, user, run.flow_id, run.id)
        return render("runs/_poll.html", user=user, run=run, errors=errors,
                      limit=ERRORS_SHOWN, form=ErrorsForm(), rate=events_per_second(run),
                      pretty=pretty_json, oob=True)
    return _run_page(request, user, run, notice=_notice(request))


@router.get("/flows/{flow_id}/runs")
def flow_runs(request: Request, flow_id: str, user: SignedIn) -> Response:
    try:
        flow = runtime_of(request).flows.get(user.principal, flow_id)
    except NotFound as exc:
        return _not_found(user, exc)
    return _flow_runs_page(request, user, flow, notice=_notice(request))


# ---- actions -------------------------------------------------------------------------------


@router.post("/flows/{flow_id}/runs")
def run_now(request: Request, flow_id: str, user: MayRunFlows, form: CheckedForm) -> Response:
    flows = runtime_of(request).flows
    fresh = form_text(form, "fresh_message_ids") == "on"
    try:
        run = flows.start_run(user.principal, flow_id, fresh_message_ids=fresh)
    except NotFound as exc:
        return _not_found(user, exc)
    except Conflict as exc:
        flow = flows.get(user.principal, flow_id)
        return _flow_runs_page(request, user, flow, status=409, problem=exc.message)
    return RedirectResponse(f"/runs/{run.id}", status_code=303)


@router.post("/runs/{run_id}/cancel")
def cancel(request: Request, run_id: str, user: MayRunFlows, form: CheckedForm) -> Response:
    """Cancel a run; back to the page the button was on (``back``: list, flow, or the run)."""
    flows = runtime_of(request).flows
    back = form_text(form, "back")
    try:
        run = flows.cancel_run(user.principal, run_id)
    except NotFound as exc:
        return _not_found(user, exc)
    except Conflict as exc:
        run = flows.get_run(user.principal, run_id)
        if back == "list":
            return render("runs/list.html", status=409, user=user, nav="runs",
                          runs=flows.recent_runs(user.principal), notice=None,
                          problem=exc.message)
        if back == "flow":
            return _flow_runs_page(request, user, flows.get(user.principal, run.flow_id),
                                   status=409, problem=exc.message)
        return _run_page(request, user, run, status=409, problem=exc.message)
    if back == "list":
        return RedirectResponse("/runs?done=canceled", status_code=303)
    if back == "flow":
        return RedirectResponse(f"/flows/{run.flow_id}/runs?done=canceled", status_code=303)
    return RedirectResponse(f"/runs/{run_id}?done=canceled", status_code=303)


@router.post("/flows/{flow_id}/errors/resolve")
def resolve(request: Request, flow_id: str, user: MayHandleErrors,
            form: CheckedForm) -> Response:
    chosen = _chosen(form)
    back = _back(form)
    if not chosen:
        return _refused(request, user, flow_id, back, 422,
                        "Select the record errors to resolve, then press Resolve.",
                        _kept(form, chosen))
    try:
        count = runtime_of(request).flows.resolve_errors(user.principal, flow_id, chosen)
    except NotFound as exc:
        return _refused(request, user, flow_id, back, 409, _gone(exc), _kept(form, chosen))
    return RedirectResponse(_back_url(flow_id, back, done="resolved", count=count),
                            status_code=303)


@router.post("/flows/{flow_id}/errors/retry")
def retry(request: Request, flow_id: str, user: MayHandleErrors, form: CheckedForm) -> Response:
    chosen = _chosen(form)
    back = _back(form)
    kept = _kept(form, chosen)
    if not chosen:
        return _refused(request, user, flow_id, back, 422,
                        "Select the record errors to retry, then press Retry.", kept)
    try:
        shown = {e.id: e for e in _errors(request, user, flow_id, back)}
    except NotFound as exc:
        return _not_found(user, exc)
    edits = _edits(shown, chosen, kept)
    if kept.problems:
        count = len(kept.problems)
        return _refused(request, user, flow_id, back, 422,
                        f"Nothing was retried: {count} record{'' if count == 1 else 's'} "
                        f"need{'s' if count == 1 else ''} a fix; see below.", kept)
    try:
        run = runtime_of(request).flows.retry_errors(user.principal, flow_id, chosen, edits)
    except NotFound as exc:
        return _refused(request, user, flow_id, back, 409, _gone(exc), kept)
    except Conflict as exc:
        return _refused(request, user, flow_id, back, 409, exc.message, kept)
    return RedirectResponse(f"/runs/{run.id}", status_code=303)


# ---- the form's fields ---------------------------------------------------------------------


def _chosen(form: FormData) -> list[str]:
    return [value for value in form.getlist(ERROR_FIELD) if isinstance(value, str) and value]


def _back(form: FormData) -> str | None:
    """The run whose page the form was on (None: the flow's runs page)."""
    return form_text(form, "run_id") or None


def _kept(form: FormData, chosen: list[str]) -> ErrorsForm:
    drafts = {key.removeprefix(DATA_FIELD): value for key, value in form.multi_items()
              if key.startswith(DATA_FIELD) and isinstance(value, str)}
    return ErrorsForm(selected=set(chosen), drafts=drafts)


def _edits(shown: dict[str, RecordErrorPublic], chosen: list[str],
           kept: ErrorsForm) -> dict[str, dict[str, object]]:
    """The records whose text was changed, parsed; a problem per record that is not a JSON
    object, or that was changed without being chosen (its edit would be lost)."""
    edits: dict[str, dict[str, object]] = {}
    for error_id, text in kept.drafts.items():
        error = shown.get(error_id)
        if error is None or error.data_hidden or not _changed(text, error):
            continue
        if error_id not in chosen:
            kept.problems[error_id] = "Select this record to retry it with your changes."
            continue
        parsed = parse_record(text)
        if isinstance(parsed, str):
            kept.problems[error_id] = parsed
        else:
            edits[error_id] = parsed
    return edits


def _changed(text: str, error: RecordErrorPublic) -> bool:
    if error.data is None:
        return bool(text.strip())
    try:
        return bool(json.loads(text) != error.data)
    except (ValueError, RecursionError):
        return True


def parse_record(text: str) -> dict[str, object] | str:
    """The record a user typed, or what is wrong with it (a sentence saying what to do)."""
    if not text.strip():
        return OBJECT_HINT
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. Fix it."
    except RecursionError:
        return f"The record is nested too deeply to be a record. {OBJECT_HINT}"
    if not isinstance(value, dict):
        return f"A record is a JSON object in {{ }}, not a {_json_kind(value)}. {OBJECT_HINT}"
    return value



def _json_kind(value: object) -> str:
    kinds: dict[type, str] = {list: "list", str: "string", bool: "true/false", int: "number",
                              float: "number"}
    return "null" if value is None else kinds.get(type(value), "value")


# ---- rendering -----------------------------------------------------------------------------


def events_per_second(run: RunPublic, now: datetime | None = None) -> float | None:
    """Events sent per second: over the whole run once it ended, so far while it goes on."""
    sent = run.counts.get("sent", 0)
    if not run.started_at or not isinstance(sent, int):
        return None
    if run.duration_seconds is not None:
        seconds = run.duration_seconds
    elif run.finished_at:
        return None
    else:
        started = datetime.fromisoformat(run.started_at)
        seconds = ((now or utcnow()) - started).total_seconds()
    return sent / seconds if seconds > 0 else None


def _errors(request: Request, user: WebUser, flow_id: str,
            run_id: str | None) -> list[RecordErrorPublic]:
    return runtime_of(request).flows.list_errors(user.principal, flow_id, run_id=run_id,
                                                 limit=ERRORS_SHOWN)


def _run_page(request: Request, user: WebUser, run: RunPublic, *, status: int = 200,
              notice: str | None = None, problem: str | None = None,
              form: ErrorsForm | None = None) -> Response:
    flows = runtime_of(request).flows
    flow = flows.get(user.principal, run.flow_id)
    errors = _errors(request, user, run.flow_id, run.id)
    return render("runs/page.html", status=status, user=user, nav="runs", run=run, flow=flow,
                  errors=errors, limit=ERRORS_SHOWN, rate=events_per_second(run),
                  debugger=_debugger(request, user, flow), notice=notice, problem=problem,
                  form=form or ErrorsForm(), pretty=pretty_json, oob=False)


def _flow_runs_page(request: Request, user: WebUser, flow: FlowPublic, *, status: int = 200,
                    notice: str | None = None, problem: str | None = None,
                    form: ErrorsForm | None = None) -> Response:
    flows = runtime_of(request).flows
    runs = flows.list_runs(user.principal, flow.id, limit=RUNS_SHOWN)
    errors = _errors(request, user, flow.id, None)
    return render("runs/flow.html", status=status, user=user, nav="runs", flow=flow, runs=runs,
                  runs_limit=RUNS_SHOWN,
                  errors=errors, limit=ERRORS_SHOWN, notice=notice, problem=problem,
                  form=form or ErrorsForm(), pretty=pretty_json, run=None, oob=False)


def _refused(request: Request, user: WebUser, flow_id: str, run_id: str | None, status: int,
             problem: str, form: ErrorsForm) -> Response:
    """The page the errors form was on, again, saying why nothing was done."""
    flows = runtime_of(request).flows
    try:
        if run_id:
            run = flows.get_run(user.principal, run_id)
            if run.flow_id == flow_id:
                return _run_page(request, user, run, status=status, problem=problem, form=form)
        flow = flows.get(user.principal, flow_id)
    except NotFound as exc:
        return _not_found(user, exc)
    return _flow_runs_page(request, user, flow, status=status, problem=problem, form=form)


def _not_found(user: WebUser, exc: NotFound) -> Response:
    return render("error.html", status=404, user=user, heading="Not found", message=exc.message)


def _gone(exc: NotFound) -> str:
    return (f"Nothing was changed: {exc.message} Someone may have resolved or retried it "
            "meanwhile; the list below is up to date.")


def _back_url(flow_id: str, run_id: str | None, **query: Any) -> str:
    path = f"/runs/{run_id}" if run_id else f"/flows/{flow_id}/runs"
    return f"{path}?{urlencode(query)}"


NOTICES = {
    "canceled": "Cancel requested: the run stops after the batch it is sending.",
}


def _notice(request: Request) -> str | None:
    done = request.query_params.get("done")
    if done == "resolved":
        count = request.query_params.get("count", "0")
        count = count if count.isdigit() else "0"
        return f"Resolved {count} record error{'' if count == '1' else 's'}."
    return NOTICES.get(done or "")


def _debugger(request: Request, user: WebUser, flow: FlowPublic) -> DebuggerLink | None:
    """The Local Segment's sources, when an import sends there (this very server)."""
    if not flow.definition.imports:
        return None
    used = {imp.connection for imp in flow.definition.imports}
    for connection in runtime_of(request).connections.list_all(user.principal):
        if connection.application != "segment" or not ({connection.name, connection.id} & used):
            continue
        endpoint = connection.settings.get("endpoint")
        if isinstance(endpoint, str) and endpoint and is_local_sandbox(
                endpoint.rstrip("/") + "/v1/batch", request):
            return DebuggerLink(SANDBOX_SOURCES, f"The import through '{connection.name}' "
                                "sends to this server's Local Segment: open its source's "
                                "Debugger to see the events.")
    return None

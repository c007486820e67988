"""Flows: the list, and the flow builder (a flow's page): source, filters, destinations,
schedule, run now, YAML.

The builder's state lives on the server: every action reads the flow's document
(``flow.definition.as_written()``), changes one part (``web.flow_editing``) and saves it with
one service call (``FlowService.update(..., unfinished=True)``). A refused save changes
nothing and shows each problem at its field (422). Each card of the builder opens its settings
in the side pane (``#pane-host``); without htmx the pane's URL is the builder page with the
pane open over it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from segbridge.accounts.roles import Permission, may
from segbridge.apps.segment.limits import CALL_TYPES
from segbridge.core.clock import utcnow
from segbridge.core.errors import (
    Conflict,
    FieldProblem,
    NotFound,
    SegbridgeError,
    ValidationFailed,
)
from segbridge.flows.preview import preview
from segbridge.flows.uploads import max_upload_bytes, store_upload
from segbridge.flows.views import FlowPublic, PreviewPublic
from segbridge.web import flow_editing as edit
from segbridge.web.auth import (
    CheckedForm,
    MayEditFlows,
    MayRunFlows,
    SignedIn,
    WebUser,
    form_text,
    runtime_of,
)
from segbridge.web.forms import FieldErrors
from segbridge.web.rendering import html_response, htmx_target, is_htmx, render, render_text

router = APIRouter(include_in_schema=False)
LIST_PATH = "/flows"
PANE_TARGET = "pane-host"
SAMPLE_SIZE = 5
FILTER_PREVIEW_SIZE = 10
YAML_MEDIA_TYPE = "text/yaml"
CALL_HELP: Mapping[str, str] = {
    "identify": "Who a user is: their userId and traits (name, email, plan).",
    "track": "What a user did: an event name and its properties (Order Completed).",
    "page": "A page a user viewed on a website, with its name and properties.",
    "screen": "A screen a user viewed in a mobile app.",
    "group": "The company or group a user belongs to, with its traits.",
    "alias": "Joins two ids of one user (a previousId becomes the userId).",
}
assert set(CALL_HELP) == set(CALL_TYPES)
SOURCE_FIELDS = ("export.type", "export.upload", "export.path", "export.options.delimiter",
                 "export.options.header", "export.options.encoding", "export.key_field",
                 "export.connection", "export.query", "export.cursor.column",
                 "export.cursor.lag_seconds")


def builder_url(flow_id: str) -> str:
    return f"{LIST_PATH}/{flow_id}"


@dataclass
class Notice:
    """A line above the builder (or a pane): what happened, or why it did not."""

    tone: str  # ok | error
    text: str


@dataclass
class PaneState:
    """What a pane shows besides the flow: the values typed, the problems, a result."""

    values: dict[str, str] = field(default_factory=dict)
    errors: FieldErrors = field(default_factory=FieldErrors.none)
    notice: Notice | None = None


# ---- shared ----------------------------------------------------------------------------------

def _not_found(user: WebUser, exc: SegbridgeError) -> Response:
    return render("error.html", status=404, user=user, heading="Not found", message=exc.message)


def _flow(request: Request, user: WebUser, flow_id: str) -> FlowPublic | Response:
    try:
        return runtime_of(request).flows.get(user.principal, flow_id)
    except NotFound as exc:
        return _not_found(user, exc)


def _board_context(request: Request, user: WebUser, flow: FlowPublic) -> dict[str, Any]:
    doc = flow.definition.as_written()
    return {"user": user, "flow": flow, "doc": doc, "nav": "flows",
            "filters": edit.filters_of(doc), "imports": edit.imports_of(doc),
            "builder_url": builder_url(flow.id), "close_url": builder_url(flow.id),
            "export": doc.get("export"), "upload_name": _upload_name(request, user, doc)}


def _upload_name(request: Request, user: WebUser, doc: Mapping[str, object]) -> str:
    export = doc.get("export")
    upload_id = export.get("upload") if isinstance(export, Mapping) else None
    if not isinstance(upload_id, str):
        return ""
    from segbridge.storage.models import Upload

    with runtime_of(request).db.session() as session:
        upload = session.get(Upload, upload_id)
        if upload is None or upload.account_id != user.principal.account_id:
            return ""
        return upload.filename


def _builder_page(request: Request, user: WebUser, flow: FlowPublic, *,
                  pane_template: str | None = None, status: int = 200,
                  notice: Notice | None = None, **pane: Any) -> Response:
    context = {**_board_context(request, user, flow), **pane}
    return render("flows/builder.html", status=status, pane_template=pane_template,
                  notice=notice, **context)


def _pane(request: Request, user: WebUser, flow: FlowPublic, template: str,
          context: Mapping[str, Any], *, status: int = 200, board: bool = False) -> Response:
    """The pane alone for htmx (with the builder's cards, out of band, after a save), else
    the builder page with the pane open over it."""
    if htmx_target(request) != PANE_TARGET:
        return _builder_page(request, user, flow, pane_template=template, status=status,
                             **context)
    full = {**_board_context(request, user, flow), **context}
    html = render_text(template, **full)
    if board:
        html += render_text("flows/_board.html", oob=True, **full)
    return html_response(html, status=status)


def _saved(request: Request, pane_url: str) -> Response | None:
    """After a plain form's save: see the pane again (post/redirect/get)."""
    if is_htmx(request):
        return None
    return RedirectResponse(pane_url + ("&" if "?" in pane_url else "?") + "saved=1",
                            status_code=303)


def _problems(exc: ValidationFailed, fields: tuple[str, ...] | list[str]) -> FieldErrors:
    return FieldErrors.of(exc.problems, fields)


def _go(request: Request, url: str) -> Response:
    """Leave for another page: htmx follows HX-Redirect, a plain form a 303."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _sample(request: Request, user: WebUser, flow_id: str, doc: dict[str, Any] | None,
            limit: int) -> tuple[PreviewPublic | None, list[FieldProblem]]:
    """The first records of the source (through the filters), or why they cannot be read."""
    if not may(user.principal, Permission.PREVIEW):
        return None, []
    try:
        return preview(runtime_of(request), user.principal, flow_id, doc, limit), []
    except ValidationFailed as exc:
        return None, exc.problems
    except SegbridgeError as exc:
        return None, [FieldProblem("export", exc.message)]


# ---- the list, create, import ----------------------------------------------------------------

@router.get(LIST_PATH)
def flow_list(request: Request, user: SignedIn) -> Response:
    return _list_page(request, user)


def _list_page(request: Request, user: WebUser, *, status: int = 200,
               problems: list[FieldProblem] | None = None,
               notice: Notice | None = None) -> Response:
    flows = runtime_of(request).flows.list_all(user.principal)
    return render("flows/list.html", status=status, user=user, nav="flows", flows=flows,
                  problems=problems or [], notice=notice)


@router.get(LIST_PATH + "/new")
def new_flow(request: Request, user: MayEditFlows, integration: str = "") -> Response:
    return _new_page(request, user, {"integration": integration}, FieldErrors.none())


def _new_page(request: Request, user: WebUser, values: Mapping[str, str],
              errors: FieldErrors, status: int = 200) -> Response:
    integrations = runtime_of(request).integrations.list_all(user.principal)
    chosen = values.get("integration", "")
    return render("flows/new.html", status=status, user=user, nav="flows",
                  integrations=integrations, values=values, errors=errors, chosen=chosen)


@router.post(LIST_PATH)
def create_flow(request: Request, user: MayEditFlows, form: CheckedForm) -> Response:
    values = {"name": form_text(form, "name").strip(),
              "integration": form_text(form, "integration")}
    runtime = runtime_of(request)
    try:
        integration = runtime.integrations.get(user.principal, values["integration"]).name \
            if values["integration"] else ""
        flow = runtime.flows.create(user.principal, {
            "name": values["name"], "integration": integration, "enabled": False},
            unfinished=True)
    except NotFound:
        errors = FieldErrors({"integration": "Choose one of your integrations."}, [])
        return _new_page(request, user, values, errors, status=422)
    except ValidationFailed as exc:
        return _new_page(request, user, values, _problems(exc, ("name", "integration")),
                         status=422)
    return RedirectResponse(builder_url(flow.id), status_code=303)


async def _file_text(form: FormData, key: str = "file") -> str | None:
    """The text of an uploaded YAML file (None: no file chosen)."""
    upload = form.get(key)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    data = await upload.read()
    return data.decode("utf-8", errors="replace")


@router.post(LIST_PATH + "/import")
async def import_flow(request: Request, user: MayEditFlows, form: CheckedForm) -> Response:
    text = await _file_text(form)
    await form.close()
    if text is None:
        return _list_page(request, user, status=422, problems=[
            FieldProblem("file", "choose a .yaml file of a flow to import")])
    try:
        flow = await asyncio.to_thread(runtime_of(request).flows.import_yaml,
                                       user.principal, text)
    except ValidationFailed as exc:
        return _list_page(request, user, status=422, problems=exc.problems)
    return RedirectResponse(builder_url(flow.id), status_code=303)


# ---- the builder and its header ------------------------------------------------------------

DONE: Mapping[str, str] = {
    "renamed": "Flow renamed.", "enabled": "Flow enabled: it runs on its schedule.",
    "disabled": "Flow disabled: it does not run on its schedule or by hand.",
    "removed": "Destination removed.", "imported": "Flow imported from the YAML file.",
}


@router.get(LIST_PATH + "/{flow_id}")
def builder(request: Request, flow_id: str, user: SignedIn, done: str = "") -> Response:
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    notice = Notice("ok", DONE[done]) if done in DONE else None
    return _builder_page(request, user, flow, notice=notice)


def _header_action(request: Request, user: WebUser, flow_id: str, action: Any,
                   done: str) -> Response:
    """A header button: the builder again, with what happened or why not (409/422)."""
    try:
        action()
    except NotFound as exc:
        return _not_found(user, exc)
    except (Conflict, ValidationFailed) as exc:
        flow = _flow(request, user, flow_id)
        if isinstance(flow, Response):
            return flow
        text = exc.message if isinstance(exc, Conflict) else "; ".join(
            f"{p.message}" for p in exc.problems)
        status = 409 if isinstance(exc, Conflict) else 422
        return _builder_page(request, user, flow, status=status,
                             notice=Notice("error", text))
    return RedirectResponse(f"{builder_url(flow_id)}?done={quote(done)}", status_code=303)


@router.post(LIST_PATH + "/{flow_id}/rename")
def rename_flow(request: Request, flow_id: str, user: MayEditFlows,
                form: CheckedForm) -> Response:
    flows = runtime_of(request).flows

    def rename() -> None:
        doc = flows.get(user.principal, flow_id).definition.as_written()
        flows.update(user.principal, flow_id, edit.renamed(doc, form_text(form, "name")),
                     unfinished=True)

    return _header_action(request, user, flow_id, rename, "renamed")


@router.post(LIST_PATH + "/{flow_id}/enable")
def enable_flow(request: Request, flow_id: str, user: MayEditFlows, _: CheckedForm) -> Response:
    flows = runtime_of(request).flows
    return _header_action(request, user, flow_id,
                          lambda: flows.set_enabled(user.principal, flow_id, True), "enabled")


@router.post(LIST_PATH + "/{flow_id}/disable")
def disable_flow(request: Request, flow_id: str, user: MayEditFlows,
                 _: CheckedForm) -> Response:
    flows = runtime_of(request).flows
    return _header_action(request, user, flow_id,
                          lambda: flows.set_enabled(user.principal, flow_id, False), "disabled")


@router.post(LIST_PATH + "/{flow_id}/run")
def run_flow(request: Request, flow_id: str, user: MayRunFlows, form: CheckedForm) -> Response:
    fresh = form_text(form, "fresh_message_ids") == "true"
    started: list[str] = []

    def start() -> None:
        run = runtime_of(request).flows.start_run(user.principal, flow_id,
                                                  fresh_message_ids=fresh)
        started.append(run.id)

    answer = _header_action(request, user, flow_id, start, "run")
    return RedirectResponse(f"/runs/{started[0]}", status_code=303) if started else answer


@router.post(LIST_PATH + "/{flow_id}/delete")
def delete_flow(request: Request, flow_id: str, user: MayEditFlows,
                _: CheckedForm) -> Response:
    flows = runtime_of(request).flows
    try:
        name = flows.get(user.principal, flow_id).name
        flows.delete(user.principal, flow_id)
    except NotFound as exc:
        return _not_found(user, exc)
    except Conflict as exc:
        flow = _flow(request, user, flow_id)
        if isinstance(flow, Response):
            return flow
        return _builder_page(request, user, flow, status=409,
                             notice=Notice("error", exc.message))
    return _go(request, f"{LIST_PATH}?deleted={quote(name)}")


# ---- the source ------------------------------------------------------------------------------

def _source_values(export: object) -> dict[str, str]:
    """The source form's values, from the saved export."""
    values = {"app": "", "file_source": "upload", "export.type": "csv",
              "export.options.delimiter": ",",
              "export.options.header": "true", "export.options.encoding": "utf-8"}
    if not isinstance(export, Mapping):
        return values
    kind = str(export.get("type", "csv"))
    values["app"] = "database" if kind == edit.DATABASE_KIND else "files"
    values["export.type"] = kind
    for key in ("upload", "path", "key_field", "connection", "query"):
        if isinstance(export.get(key), str):
            values[f"export.{key}"] = export[key]
    if export.get("path"):
        values["file_source"] = "path"
    options = export.get("options")
    if isinstance(options, Mapping):
        delimiter = options.get("delimiter", ",")
        values["export.options.delimiter"] = "\\t" if delimiter == "\t" else str(delimiter)
        values["export.options.header"] = "true" if options.get("header", True) else "false"
        values["export.options.encoding"] = str(options.get("encoding", "utf-8"))
    cursor = export.get("cursor")
    if isinstance(cursor, Mapping):
        values["export.cursor.column"] = str(cursor.get("column", ""))
        values["export.cursor.lag_seconds"] = str(cursor.get("lag_seconds", 0))
    return values


def _source_context(request: Request, user: WebUser, flow: FlowPublic, state: PaneState,
                    *, sample: bool) -> dict[str, Any]:
    connections = [c for c in runtime_of(request).connections.list_all(user.principal)
                   if c.application == "database"]
    result: PreviewPublic | None = None
    problems: list[FieldProblem] = []
    if sample and flow.definition.export is not None:
        result, problems = _sample(request, user, flow.id, None, SAMPLE_SIZE)
    return_to = f"{builder_url(flow.id)}/source?app=database"
    return {"values": state.values, "errors": state.errors, "pane_notice": state.notice,
            "database_connections": connections, "preview": result, "problems": problems,
            "create_database_url": "/connections/new/database?return_to=" + quote(return_to,
                                                                                  safe=""),
            "may_upload": may(user.principal, Permission.UPLOAD)}


@router.get(LIST_PATH + "/{flow_id}/source")
def source_pane(request: Request, flow_id: str, user: SignedIn, app: str = "",
                connection: str = "", saved: str = "") -> Response:
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    values = _source_values(flow.definition.as_written().get("export"))
    if connection:
        app = "database"
        values["export.connection"] = _connection_name(request, user, connection)
    if app in ("files", "database"):
        if app != values["app"]:
            values["export.type"] = "database" if app == "database" else "csv"
        values["app"] = app
    notice = Notice("ok", "Source saved.") if saved else None
    context = _source_context(request, user, flow, PaneState(values, notice=notice),
                              sample=values["app"] != "" and not connection)
    return _pane(request, user, flow, "flows/pane_source.html", context)


def _connection_name(request: Request, user: WebUser, connection_id: str) -> str:
    try:
        return runtime_of(request).connections.get(user.principal, connection_id).name
    except NotFound:
        return connection_id


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1024 * 1024):
        yield chunk


async def _store(request: Request, user: WebUser, form: FormData) -> tuple[str, str | None]:
    """The upload id to use: a new file's (stored now), else the one the form kept; and a
    problem with the new file, if any."""
    kept = form_text(form, "export.upload")
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return kept, None
    if not may(user.principal, Permission.UPLOAD):
        return kept, "your role may not upload files"
    runtime = runtime_of(request)
    try:
        stored = await store_upload(runtime.db, runtime.settings.home,
                                    user.principal.account_id, upload.filename, _chunks(upload),
                                    max_bytes=max_upload_bytes(runtime.settings.max_upload_mb),
                                    declared_size=upload.size)
    except SegbridgeError as exc:
        return kept, exc.message
    return stored.id, None


def _export_from(form: FormData, upload_id: str) -> dict[str, object]:
    values = {key: form_text(form, key) for key in SOURCE_FIELDS}
    if form_text(form, "app") == "database":
        return edit.database_export(
            connection=values["export.connection"], query=values["export.query"],
            cursor_column=values["export.cursor.column"],
            lag_seconds=edit.whole_number(values["export.cursor.lag_seconds"]),
            key_field=values["export.key_field"])
    kind = values["export.type"] if values["export.type"] in edit.FILE_KINDS else "csv"
    options = edit.csv_options(
        delimiter=values["export.options.delimiter"] or ",",
        header=values["export.options.header"] != "false",
        encoding=values["export.options.encoding"]) if kind == "csv" else (
        {"encoding": values["export.options.encoding"].strip() or "utf-8"})
    use_path = form_text(form, "file_source") == "path"
    return edit.file_export(kind, upload="" if use_path else upload_id,
                            path=values["export.path"] if use_path else "",
                            options=options, key_field=values["export.key_field"])


@router.post(LIST_PATH + "/{flow_id}/source")
async def save_source(request: Request, flow_id: str, user: MayEditFlows,
                      form: CheckedForm) -> Response:
    try:
        return await _save_source(request, flow_id, user, form)
    finally:
        await form.close()  # the uploaded file's temporary copy


async def _save_source(request: Request, flow_id: str, user: WebUser,
                       form: FormData) -> Response:
    flows = runtime_of(request).flows
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    upload_id, upload_problem = await _store(request, user, form)
    values = {key: form_text(form, key) for key in ("app", "file_source", *SOURCE_FIELDS)}
    values["export.upload"] = upload_id
    values["export.options.header"] = "false" if form_text(
        form, "export.options.header") == "false" else "true"
    if upload_problem:
        problems = [FieldProblem("export.upload", upload_problem)]
        return await _refused_source(request, user, flow, values, problems)
    doc = edit.with_export(flow.definition.as_written(), _export_from(form, upload_id))
    try:
        flow = await asyncio.to_thread(flows.update, user.principal, flow_id, doc,
                                       unfinished=True)
    except ValidationFailed as exc:
        return await _refused_source(request, user, flow, values, exc.problems)
    pane_url = f"{builder_url(flow_id)}/source"
    redirect = _saved(request, pane_url)
    if redirect is not None:
        return redirect
    state = PaneState(_source_values(flow.definition.as_written().get("export")),
                      notice=Notice("ok", "Source saved."))
    context = await asyncio.to_thread(_source_context, request, user, flow, state, sample=True)
    return _pane(request, user, flow, "flows/pane_source.html", context, board=True)


async def _refused_source(request: Request, user: WebUser, flow: FlowPublic,
                          values: dict[str, str], problems: list[FieldProblem]) -> Response:
    shown = [*SOURCE_FIELDS, "file"]
    state = PaneState(values, FieldErrors.of(problems, shown))
    context = await asyncio.to_thread(_source_context, request, user, flow, state,
                                      sample=False)
    return _pane(request, user, flow, "flows/pane_source.html", context, status=422)


# ---- filters ---------------------------------------------------------------------------------

def _filter_fields(count: int) -> list[str]:
    return [f"steps.{index}.filter.expression" for index in range(count)]


def _steps_context(request: Request, user: WebUser, flow: FlowPublic, expressions: list[str],
                   errors: FieldErrors, notice: Notice | None, *,
                   sample_doc: dict[str, Any] | None = None, sample: bool = True,
                   ) -> dict[str, Any]:
    result: PreviewPublic | None = None
    problems: list[FieldProblem] = []
    if sample and flow.definition.export is not None:
        result, problems = _sample(request, user, flow.id, sample_doc, FILTER_PREVIEW_SIZE)
    return {"expressions": expressions, "errors": errors, "pane_notice": notice,
            "preview": result, "problems": problems,
            "has_source": flow.definition.export is not None}


@router.get(LIST_PATH + "/{flow_id}/steps")
def steps_pane(request: Request, flow_id: str, user: SignedIn, saved: str = "") -> Response:
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    notice = Notice("ok", "Filters saved.") if saved else None
    context = _steps_context(request, user, flow, edit.filters_of(flow.definition.as_written()),
                             FieldErrors.none(), notice)
    return _pane(request, user, flow, "flows/pane_steps.html", context)


def _posted_filters(form: FormData) -> list[str]:
    expressions = [value for value in form.getlist("expression") if isinstance(value, str)]
    removed = form_text(form, "remove")
    if removed.isdigit() and int(removed) < len(expressions):
        del expressions[int(removed)]
    return [text.strip() for text in expressions if text.strip()]


@router.post(LIST_PATH + "/{flow_id}/steps/preview")
def preview_steps(request: Request, flow_id: str, user: SignedIn,
                  form: CheckedForm) -> Response:
    """The sample records through the filters as typed (nothing is saved)."""
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    expressions = _posted_filters(form)
    doc = edit.with_filters(flow.definition.as_written(), expressions)
    context = _steps_context(request, user, flow, expressions, FieldErrors.none(), None,
                             sample_doc=doc)
    errors = FieldErrors.of(context["problems"], _filter_fields(len(expressions)))
    return render("flows/_steps_preview.html", user=user, flow=flow,
                  **{**context, "errors": errors})


@router.post(LIST_PATH + "/{flow_id}/steps")
def save_steps(request: Request, flow_id: str, user: MayEditFlows,
               form: CheckedForm) -> Response:
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    expressions = _posted_filters(form)
    doc = edit.with_filters(flow.definition.as_written(), expressions)
    try:
        flow = runtime_of(request).flows.update(user.principal, flow_id, doc, unfinished=True)
    except ValidationFailed as exc:
        errors = _problems(exc, _filter_fields(len(expressions)))
        context = _steps_context(request, user, flow, expressions, errors, None, sample=False)
        return _pane(request, user, flow, "flows/pane_steps.html", context, status=422)
    redirect = _saved(request, f"{builder_url(flow_id)}/steps")
    if redirect is not None:
        return redirect
    context = _steps_context(request, user, flow, expressions, FieldErrors.none(),
                             Notice("ok", "Filters saved."))
    return _pane(request, user, flow, "flows/pane_steps.html", context, board=True)


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
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    schedule = flow.definition.schedule
    notice = Notice("ok", "Schedule saved.") if saved else None
    context = _schedule_context(schedule.cron if schedule else "",
                                schedule.timezone if schedule else "UTC", FieldErrors.none(),
                                notice)
    return _pane(request, user, flow, "flows/pane_schedule.html", context)


@router.get(LIST_PATH + "/{flow_id}/schedule/next")
def schedule_next(request: Request, flow_id: str, user: SignedIn,
                  cron: Annotated[str, Query(alias="schedule.cron")] = "",
                  timezone: Annotated[str, Query(alias="schedule.timezone")] = "UTC",
                  ) -> Response:
    """The next run times of a cron as typed (refreshed while it changes)."""
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    return render("flows/_next_runs.html", next=_next_runs(cron, timezone))


@router.post(LIST_PATH + "/{flow_id}/schedule")
def save_schedule(request: Request, flow_id: str, user: MayEditFlows,
                  form: CheckedForm) -> Response:
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    cron, zone = form_text(form, "schedule.cron"), form_text(form, "schedule.timezone")
    doc = edit.with_schedule(flow.definition.as_written(), cron, zone)
    try:
        flow = runtime_of(request).flows.update(user.principal, flow_id, doc, unfinished=True)
    except ValidationFailed as exc:
        errors = _problems(exc, ("schedule.cron", "schedule.timezone"))
        return _pane(request, user, flow, "flows/pane_schedule.html",
                     _schedule_context(cron, zone, errors, None), status=422)
    redirect = _saved(request, f"{builder_url(flow_id)}/schedule")
    if redirect is not None:
        return redirect
    text = "Schedule saved." if cron.strip() else "Schedule removed: the flow runs only by hand."
    return _pane(request, user, flow, "flows/pane_schedule.html",
                 _schedule_context(cron, zone, FieldErrors.none(), Notice("ok", text)),
                 board=True)


# ---- destinations ----------------------------------------------------------------------------

def _segment_connections(request: Request, user: WebUser) -> list[Any]:
    return [c for c in runtime_of(request).connections.list_all(user.principal)
            if c.application == "segment"]


@router.get(LIST_PATH + "/{flow_id}/imports/new")
def destination_pane(request: Request, flow_id: str, user: SignedIn, name: str = "",
                     connection: str = "", call: str = "track") -> Response:
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    connections = _segment_connections(request, user)
    chosen = next((c for c in connections if connection in (c.id, c.name)), None)
    notice = Notice("ok", f"Connection '{chosen.name}' chosen.") if chosen else None
    context = {"values": {"name": name, "connection": chosen.id if chosen else "",
                          "call": call if call in CALL_HELP else "track"},
               "connections": connections, "calls": CALL_HELP, "pane_notice": notice,
               "errors": FieldErrors.none()}
    return _pane(request, user, flow, "flows/pane_destination.html", context)


@router.get(LIST_PATH + "/{flow_id}/imports/new/connection")
def destination_new_connection(request: Request, flow_id: str, user: MayEditFlows,
                               name: str = "", call: str = "track") -> Response:
    """Create connection from the destination pane: the Create connection pane, which comes
    back here (what was chosen kept) with the new connection chosen."""
    back = f"{builder_url(flow_id)}/imports/new?" + urlencode({"name": name, "call": call})
    target = "/connections/new/segment?return_to=" + quote(back, safe="")
    if is_htmx(request):
        location = json.dumps({"path": target, "target": "#" + PANE_TARGET})
        return Response(status_code=200, headers={"HX-Location": location})
    return RedirectResponse(target, status_code=303)


def _import_context(request: Request, user: WebUser, flow: FlowPublic, index: int,
                    values: dict[str, str], errors: FieldErrors,
                    notice: Notice | None) -> dict[str, Any]:
    step = edit.imports_of(flow.definition.as_written())[index]
    return {"index": index, "step": step, "values": values, "errors": errors,
            "pane_notice": notice, "connections": _segment_connections(request, user),
            "calls": CALL_HELP}


def _import_index(flow: FlowPublic, index: int, user: WebUser) -> Response | None:
    if 0 <= index < len(flow.definition.imports):
        return None
    return _not_found(user, NotFound(f"The flow '{flow.name}' has no destination {index + 1}."))


@router.get(LIST_PATH + "/{flow_id}/imports/{index}")
def import_pane(request: Request, flow_id: str, index: int, user: SignedIn,
                saved: str = "", connection: str = "") -> Response:
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    missing = _import_index(flow, index, user)
    if missing is not None:
        return missing
    step = flow.definition.imports[index]
    values = {"name": step.name, "connection": step.connection}
    if connection:
        values["connection"] = _connection_name(request, user, connection)
    notice = Notice("ok", "Destination saved.") if saved else None
    context = _import_context(request, user, flow, index, values, FieldErrors.none(), notice)
    return _pane(request, user, flow, "flows/pane_import.html", context)


@router.post(LIST_PATH + "/{flow_id}/imports/{index}")
def save_import(request: Request, flow_id: str, index: int, user: MayEditFlows,
                form: CheckedForm) -> Response:
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    missing = _import_index(flow, index, user)
    if missing is not None:
        return missing
    values = {"name": form_text(form, "name"), "connection": form_text(form, "connection")}
    doc = edit.with_import_changed(flow.definition.as_written(), index, name=values["name"],
                                   connection=values["connection"])
    try:
        flow = runtime_of(request).flows.update(user.principal, flow_id, doc, unfinished=True)
    except ValidationFailed as exc:
        problems = [FieldProblem(p.field.removeprefix(f"imports.{index}."), p.message)
                    for p in exc.problems]
        errors = FieldErrors.of(problems, ("name", "connection"))
        context = _import_context(request, user, flow, index, values, errors, None)
        return _pane(request, user, flow, "flows/pane_import.html", context, status=422)
    redirect = _saved(request, f"{builder_url(flow_id)}/imports/{index}")
    if redirect is not None:
        return redirect
    context = _import_context(request, user, flow, index, values, FieldErrors.none(),
                              Notice("ok", "Destination saved."))
    return _pane(request, user, flow, "flows/pane_import.html", context, board=True)


@router.post(LIST_PATH + "/{flow_id}/imports/{index}/delete")
def remove_import(request: Request, flow_id: str, index: int, user: MayEditFlows,
                  _: CheckedForm) -> Response:
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    missing = _import_index(flow, index, user)
    if missing is not None:
        return missing
    doc = edit.without_import(flow.definition.as_written(), index)
    try:
        runtime_of(request).flows.update(user.principal, flow_id, doc, unfinished=True)
    except ValidationFailed as exc:
        text = "; ".join(f"{p.field}: {p.message}" for p in exc.problems)
        return _builder_page(request, user, flow, status=422, notice=Notice("error", text))
    return _go(request, f"{builder_url(flow_id)}?done=removed")


# ---- YAML ------------------------------------------------------------------------------------

@router.get(LIST_PATH + "/{flow_id}/yaml")
def yaml_pane(request: Request, flow_id: str, user: SignedIn) -> Response:
    flow = _flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    return _yaml_pane(request, user, flow, [], None)


def _yaml_pane(request: Request, user: WebUser, flow: FlowPublic,
               problems: list[FieldProblem], notice: Notice | None,
               status: int = 200) -> Response:
    text = runtime_of(request).flows.export_yaml(user.principal, flow.id)
    context = {"yaml_text": text, "yaml_problems": problems, "pane_notice": notice}
    return _pane(request, user, flow, "flows/pane_yaml.html", context, status=status)


@router.get(LIST_PATH + "/{flow_id}/flow.yaml")
def download_yaml(request: Request, flow_id: str, user: SignedIn) -> Response:
    flows = runtime_of(request).flows
    try:
        flow = flows.get(user.principal, flow_id)
        text = flows.export_yaml(user.principal, flow_id)
    except NotFound as exc:
        return _not_found(user, exc)
    filename = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in flow.name) or "flow"
    return Response(text, media_type=YAML_MEDIA_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{filename}.yaml"',
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


@router.post(LIST_PATH + "/{flow_id}/yaml")
async def import_yaml_here(request: Request, flow_id: str, user: MayEditFlows,
                           form: CheckedForm) -> Response:
    """Import a file: it replaces this flow when it names it, else it creates (or updates)
    the flow of the name it gives; the builder of that flow follows."""
    flow = _flow(request, user, flow_id)
    text = await _file_text(form)
    await form.close()
    if isinstance(flow, Response):
        return flow
    if text is None:
        return _yaml_pane(request, user, flow, [FieldProblem(
            "file", "choose a .yaml file of a flow to import")], None, status=422)
    try:
        imported = await asyncio.to_thread(runtime_of(request).flows.import_yaml,
                                           user.principal, text)
    except ValidationFailed as exc:
        return _yaml_pane(request, user, flow, exc.problems, None, status=422)
    return _go(request, f"{builder_url(imported.id)}?done=imported")

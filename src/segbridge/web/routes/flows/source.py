"""The Add source pane: Files (upload or server path, reading options), Database (a
connection, possibly created in place, the query and its cursor), HTTP API (a connection,
the request, where the records are, the pagination and the incremental "since") or Webhook
(how requests are verified, the body limit, the batches); after a save, the source's first
records (a webhook flow: the builder's Webhook box, its URL and its secret)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData, UploadFile

from segbridge.accounts.roles import Permission, may
from segbridge.core.errors import (
    FieldProblem,
    SegbridgeError,
    ValidationFailed,
)
from segbridge.flows.uploads import max_upload_bytes, store_upload
from segbridge.flows.views import FlowPublic
from segbridge.web import flow_editing as edit
from segbridge.web.auth import (
    CheckedForm,
    MayEditFlows,
    SignedIn,
    WebUser,
    form_text,
    runtime_of,
)
from segbridge.web.forms import FieldErrors
from segbridge.web.routes.flows.common import (
    LIST_PATH,
    Notice,
    PaneState,
    after_save,
    builder_url,
    connection_name,
    create_connection_url,
    find_flow,
    form_text_of,
    json_or_text,
    pane_sample,
    query_from_lines,
    request_texts,
    show_pane,
)

router = APIRouter(include_in_schema=False)

SAMPLE_SIZE = 5
SOURCE_FIELDS = ("export.type", "export.upload", "export.path", "export.options.delimiter",
                 "export.options.header", "export.options.encoding", "export.columns",
                 "export.key_field",
                 "export.connection", "export.query", "export.cursor.column",
                 "export.cursor.lag_seconds")
HTTP_KIND = "http"
WEBHOOK_KIND = "webhook"
APPS = ("files", "database", HTTP_KIND, WEBHOOK_KIND)  # the applications the pane offers
PAGING_FIELDS = ("type", "param", "size", "size_param", "cursor_path", "cursor_param",
                 "next_path", "max_pages")
HTTP_FIELDS = ("export.method", "export.path", "export.body", "export.records",
               "export.format", *(f"export.pagination.{name}" for name in PAGING_FIELDS),
               "export.since.field", "export.since.param", "export.since.lag_seconds")
VERIFICATION_FIELDS = ("kind", "algorithm", "encoding", "header", "prefix", "timestamp_header",
                       "tolerance_seconds", "username")
WEBHOOK_FIELDS = (*(f"export.verification.{name}" for name in VERIFICATION_FIELDS),
                  "export.max_body_bytes", "export.batch.max_records",
                  "export.batch.max_seconds", "export.sensitive_fields")
# the verification fields each kind reads (the others are not saved with it)
VERIFICATION_KINDS = {"none": (), "basic": ("username",), "token": ("header", "prefix"),
                      "hmac": ("algorithm", "encoding", "header", "prefix", "timestamp_header",
                               "tolerance_seconds")}
FORM_FIELDS = (*SOURCE_FIELDS, *HTTP_FIELDS, *WEBHOOK_FIELDS)


# ---- the source ------------------------------------------------------------------------------

def _source_values(export: object) -> dict[str, str]:
    """The source form's values, from the saved export."""
    values = {"app": "", "file_source": "upload", "export.type": "csv",
              "export.options.delimiter": ",",
              "export.options.header": "true", "export.options.encoding": "utf-8"}
    if not isinstance(export, Mapping):
        return values
    kind = str(export.get("type", "csv"))
    values["app"] = kind if kind in (edit.DATABASE_KIND, HTTP_KIND, WEBHOOK_KIND) else "files"
    values["export.type"] = kind
    if kind == HTTP_KIND:
        return {**values, **_http_values(export)}
    if kind == WEBHOOK_KIND:
        return {**values, **_webhook_values(export)}
    for key in ("upload", "path", "key_field", "connection", "query"):
        if isinstance(export.get(key), str):
            values[f"export.{key}"] = export[key]
    if export.get("path"):
        values["file_source"] = "path"
    if isinstance(export.get("columns"), list):
        values["export.columns"] = ", ".join(str(name) for name in export["columns"])
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


def _http_values(export: Mapping[str, Any]) -> dict[str, str]:
    """The HTTP form's values, from a saved ``type: http`` export."""
    values = {f"export.{key}": str(export[key]) for key in
              ("connection", "method", "path", "records", "format", "key_field")
              if isinstance(export.get(key), str)}
    values.update(request_texts(export, "export."))
    for part, names in (("pagination", PAGING_FIELDS), ("since", ("field", "param",
                                                                  "lag_seconds"))):
        given = export.get(part)
        if isinstance(given, Mapping):
            values.update({f"export.{part}.{name}": str(given[name]) for name in names
                           if given.get(name) is not None})
    return values


def _webhook_values(export: Mapping[str, Any]) -> dict[str, str]:
    """The Webhook form's values, from a saved ``type: webhook`` export."""
    values = {}
    for part in ("verification", "batch"):
        given = export.get(part)
        if isinstance(given, Mapping):
            values.update({f"export.{part}.{name}": form_text_of(value)
                           for name, value in given.items() if value is not None})
    if export.get("max_body_bytes") is not None:
        values["export.max_body_bytes"] = form_text_of(export["max_body_bytes"])
    sensitive = export.get("sensitive_fields")
    if isinstance(sensitive, list):
        values["export.sensitive_fields"] = "\n".join(str(name) for name in sensitive)
    if isinstance(export.get("key_field"), str):
        values["export.key_field"] = export["key_field"]
    return values


def _webhook_export(values: Mapping[str, str]) -> dict[str, object]:
    """A ``type: webhook`` export from the form: the verification fields of its kind, the
    limits given (blank: the defaults); what the document refuses, it names at its field."""
    kind = values["export.verification.kind"].strip() or "none"
    verification: dict[str, object] = {"kind": kind}
    for name in VERIFICATION_KINDS.get(kind, ()):
        text = values[f"export.verification.{name}"].strip()
        if text:
            verification[name] = edit.whole_number(text) if name == "tolerance_seconds" \
                else text
    export: dict[str, object] = {"type": WEBHOOK_KIND, "verification": verification}
    if values["export.max_body_bytes"].strip():
        export["max_body_bytes"] = edit.whole_number(values["export.max_body_bytes"])
    batch: dict[str, object] = {}
    if values["export.batch.max_records"].strip():
        batch["max_records"] = edit.whole_number(values["export.batch.max_records"])
    if values["export.batch.max_seconds"].strip():
        batch["max_seconds"] = _number(values["export.batch.max_seconds"])
    if batch:
        export["batch"] = batch
    sensitive = [line.strip() for line in values["export.sensitive_fields"].splitlines()
                 if line.strip()]
    if sensitive:
        export["sensitive_fields"] = sensitive
    if values["export.key_field"].strip():
        export["key_field"] = values["export.key_field"].strip()
    return export


def _number(text: str) -> object:
    """A number typed in a form (seconds may have decimals); the text when it is none."""
    try:
        number = float(text.strip())
    except ValueError:
        return text.strip()
    return int(number) if number.is_integer() else number


def _http_export(values: Mapping[str, str]) -> dict[str, object]:
    """A ``type: http`` export from the form (what the document refuses, it names at its
    field: a query line without =, a body that is not JSON)."""
    export: dict[str, object] = {"type": HTTP_KIND,
                                 "connection": values["export.connection"].strip(),
                                 "path": values["export.path"].strip() or "/"}
    if values["export.method"] == "POST":
        export["method"] = "POST"
    if values["export.query"].strip():
        export["query"] = query_from_lines(values["export.query"])
    if values["export.body"].strip():
        export["body"] = json_or_text(values["export.body"])
    if values["export.records"].strip():
        export["records"] = values["export.records"].strip()
    if values["export.format"] == "ndjson":
        export["format"] = "ndjson"
    paging = _part(values, "pagination", PAGING_FIELDS, numbers=("size", "max_pages"))
    if paging.get("type"):
        export["pagination"] = paging
    since = _part(values, "since", ("field", "param", "lag_seconds"), numbers=("lag_seconds",))
    if since.get("field") or since.get("param"):
        export["since"] = since
    if values["export.key_field"].strip():
        export["key_field"] = values["export.key_field"].strip()
    return export


def _part(values: Mapping[str, str], part: str, names: tuple[str, ...], *,
          numbers: tuple[str, ...]) -> dict[str, object]:
    found: dict[str, object] = {}
    for name in names:
        text = values.get(f"export.{part}.{name}", "").strip()
        if text:
            found[name] = edit.whole_number(text) if name in numbers else text
    return found


def _source_context(request: Request, user: WebUser, flow: FlowPublic, state: PaneState,
                    *, sample: bool) -> dict[str, Any]:
    app = state.values.get("app") or ""
    wanted = HTTP_KIND if app == HTTP_KIND else "database"
    connections = [c for c in runtime_of(request).connections.list_all(user.principal)
                   if c.application == wanted]
    result, problems = pane_sample(request, user, flow, SAMPLE_SIZE, wanted=sample)
    return_to = f"{builder_url(flow.id)}/source?app={wanted}"
    return {"values": state.values, "errors": state.errors, "pane_notice": state.notice,
            "database_connections": connections, "preview": result, "problems": problems,
            "create_database_url": create_connection_url(wanted, return_to),
            "may_upload": may(user.principal, Permission.UPLOAD)}


@router.get(LIST_PATH + "/{flow_id}/source")
def source_pane(request: Request, flow_id: str, user: SignedIn, app: str = "",
                connection: str = "", saved: str = "") -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    values = _source_values(flow.definition.as_written().get("export"))
    if app == WEBHOOK_KIND and values["app"] != WEBHOOK_KIND:
        values.setdefault("export.verification.kind", "hmac")  # Segment's X-Signature
    if connection:
        app = HTTP_KIND if app == HTTP_KIND else "database"
        values["export.connection"] = connection_name(request, user, connection)
    if app in APPS:
        if app != values["app"]:
            values["export.type"] = "csv" if app == "files" else app
        values["app"] = app
    notice = Notice("ok", "Source saved.") if saved else None
    context = _source_context(request, user, flow, PaneState(values, notice=notice),
                              sample=values["app"] != "" and not connection)
    return show_pane(request, user, flow, "flows/pane_source.html", context)


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
    values = {key: form_text(form, key) for key in FORM_FIELDS}
    if form_text(form, "app") == HTTP_KIND:
        return _http_export(values)
    if form_text(form, "app") == WEBHOOK_KIND:
        return _webhook_export(values)
    if form_text(form, "app") == "database":
        return edit.database_export(
            connection=values["export.connection"], query=values["export.query"],
            cursor_column=values["export.cursor.column"],
            lag_seconds=edit.whole_number(values["export.cursor.lag_seconds"]),
            key_field=values["export.key_field"])
    kind = values["export.type"] if values["export.type"] in edit.FILE_KINDS else "csv"
    options = edit.file_options(kind, delimiter=values["export.options.delimiter"],
                                header=values["export.options.header"] != "false",
                                encoding=values["export.options.encoding"])
    columns = edit.column_names(values["export.columns"]) if kind == edit.PARQUET_KIND else []
    use_path = form_text(form, "file_source") == "path"
    return edit.file_export(kind, upload="" if use_path else upload_id,
                            path=values["export.path"] if use_path else "",
                            options=options, key_field=values["export.key_field"],
                            columns=columns)


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
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    upload_id, upload_problem = await _store(request, user, form)
    values = {key: form_text(form, key) for key in ("app", "file_source", *FORM_FIELDS)}
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
    redirect = after_save(request, pane_url)
    if redirect is not None:
        return redirect
    state = PaneState(_source_values(flow.definition.as_written().get("export")),
                      notice=Notice("ok", "Source saved."))
    context = await asyncio.to_thread(_source_context, request, user, flow, state, sample=True)
    return show_pane(request, user, flow, "flows/pane_source.html", context, board=True)


async def _refused_source(request: Request, user: WebUser, flow: FlowPublic,
                          values: dict[str, str], problems: list[FieldProblem]) -> Response:
    shown = [*FORM_FIELDS, "file"]
    state = PaneState(values, FieldErrors.of(problems, shown))
    context = await asyncio.to_thread(_source_context, request, user, flow, state,
                                      sample=False)
    return show_pane(request, user, flow, "flows/pane_source.html", context, status=422)

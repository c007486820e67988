"""What the flow builder's pages share: the flow, the builder page with a pane open over it
(or the pane alone for htmx), the source's sample records, notices and pane state."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from segbridge.accounts.roles import Permission, may
from segbridge.core.errors import (
    FieldProblem,
    NotFound,
    SegbridgeError,
    ValidationFailed,
)
from segbridge.flows.preview import preview
from segbridge.flows.views import FlowPublic, PreviewPublic
from segbridge.web import flow_editing as edit
from segbridge.web.auth import (
    WebUser,
    runtime_of,
)
from segbridge.web.forms import FieldErrors
from segbridge.web.rendering import html_response, htmx_target, is_htmx, render, render_text

LIST_PATH = "/flows"
PANE_TARGET = "pane-host"


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

def not_found(user: WebUser, exc: SegbridgeError) -> Response:
    return render("error.html", status=404, user=user, heading="Not found", message=exc.message)


def find_flow(request: Request, user: WebUser, flow_id: str) -> FlowPublic | Response:
    try:
        return runtime_of(request).flows.get(user.principal, flow_id)
    except NotFound as exc:
        return not_found(user, exc)


def find_flow_part(request: Request, user: WebUser, flow_id: str, index: int, *,
                   count: Callable[[FlowPublic], int], noun: str) -> FlowPublic | Response:
    """The flow when it has part ``index`` (a lookup, a destination: ``count`` says how many
    it has), else the Not found page that names the part."""
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    return part_missing(user, flow, index, count=count, noun=noun) or flow


def part_missing(user: WebUser, flow: FlowPublic, index: int, *,
                 count: Callable[[FlowPublic], int], noun: str) -> Response | None:
    """The Not found page when the flow has no part ``index`` (``count``: how many it has)."""
    if 0 <= index < count(flow):
        return None
    return not_found(user, NotFound(f"The flow '{flow.name}' has no {noun} {index + 1}."))


def board_context(request: Request, user: WebUser, flow: FlowPublic) -> dict[str, Any]:
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


def builder_page(request: Request, user: WebUser, flow: FlowPublic, *,
                 pane_template: str | None = None, status: int = 200,
                 notice: Notice | None = None, **pane: Any) -> Response:
    context = {**board_context(request, user, flow), **pane}
    return render("flows/builder.html", status=status, pane_template=pane_template,
                  notice=notice, **context)


def show_pane(request: Request, user: WebUser, flow: FlowPublic, template: str,
              context: Mapping[str, Any], *, status: int = 200, board: bool = False,
              ) -> Response:
    """The pane alone for htmx (after a save, with the builder's header and cards behind it
    out of band: they show the flow as saved), else the builder page with the pane open."""
    if htmx_target(request) != PANE_TARGET:
        return builder_page(request, user, flow, pane_template=template, status=status,
                            **context)
    full = {**board_context(request, user, flow), **context}
    html = render_text(template, **full)
    if board:
        html += render_text("flows/_head.html", oob=True, notice=None, **full)
        html += render_text("flows/_board.html", oob=True, **full)
    return html_response(html, status=status)


def after_save(request: Request, pane_url: str) -> Response | None:
    """After a plain form's save: see the pane again (post/redirect/get)."""
    if is_htmx(request):
        return None
    return RedirectResponse(pane_url + ("&" if "?" in pane_url else "?") + "saved=1",
                            status_code=303)


def problems_at(exc: ValidationFailed, fields: tuple[str, ...] | list[str]) -> FieldErrors:
    return FieldErrors.of(exc.problems, fields)


def save_removal(request: Request, user: WebUser, flow: FlowPublic,
                 doc: Mapping[str, Any], done: str) -> Response:
    """Save the flow without a part (a destination, a lookup) and go back to the builder with
    the notice ``done``; a refused save shows the builder with the problems."""
    try:
        runtime_of(request).flows.update(user.principal, flow.id, dict(doc), unfinished=True)
    except ValidationFailed as exc:
        text = "; ".join(f"{p.field}: {p.message}" for p in exc.problems)
        return builder_page(request, user, flow, status=422, notice=Notice("error", text))
    return go(request, f"{builder_url(flow.id)}?done={done}")


def create_connection(request: Request, app: str, back: str) -> Response:
    """Create connection from a pane: the Create connection pane of ``app`` (htmx opens it in
    the pane host), which comes back to ``back`` with the new connection chosen."""
    target = create_connection_url(app, back)
    if is_htmx(request):
        location = json.dumps({"path": target, "target": "#" + PANE_TARGET})
        return Response(status_code=200, headers={"HX-Location": location})
    return RedirectResponse(target, status_code=303)


def create_connection_url(app: str, back: str) -> str:
    """The Create connection pane of ``app``, which comes back to ``back``."""
    return f"/connections/new/{app}?return_to=" + quote(back, safe="")


def go(request: Request, url: str) -> Response:
    """Leave for another page: htmx follows HX-Redirect, a plain form a 303."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def read_sample(request: Request, user: WebUser, flow_id: str, doc: dict[str, Any] | None,
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


def pane_sample(request: Request, user: WebUser, flow: FlowPublic, limit: int, *,
                doc: dict[str, Any] | None = None, wanted: bool = True,
                ) -> tuple[PreviewPublic | None, list[FieldProblem]]:
    """A pane's sample records (``read_sample``) when ``wanted`` and the flow has a source."""
    if not wanted or flow.definition.export is None:
        return None, []
    return read_sample(request, user, flow.id, doc, limit)


def connection_name(request: Request, user: WebUser, connection_id: str) -> str:
    try:
        return runtime_of(request).connections.get(user.principal, connection_id).name
    except NotFound:
        return connection_id


# ---- an HTTP request typed in a pane (the HTTP API source, an HTTP lookup) -------------------

def query_from_lines(text: str) -> object:
    """``name=value`` lines as a mapping; the text as typed when a line is not one (the
    document then says what to write)."""
    pairs = [line.partition("=") for line in text.splitlines() if line.strip()]
    if any(not sep or not name.strip() for name, sep, _ in pairs):
        return text
    return {name.strip(): value.strip() for name, _, value in pairs}


def json_or_text(text: str) -> object:
    """A body typed as JSON; the text as typed when it is not JSON (the document names it)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def form_text_of(value: object) -> str:
    """A saved value as the form shows it (true/false for a boolean)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def request_texts(saved: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """The form's ``<prefix>query`` lines and ``<prefix>body`` JSON from a saved request."""
    values: dict[str, str] = {}
    query = saved.get("query")
    if isinstance(query, Mapping):
        values[f"{prefix}query"] = "\n".join(f"{name}={form_text_of(value)}"
                                             for name, value in query.items())
    if saved.get("body") is not None:
        values[f"{prefix}body"] = json.dumps(saved["body"], indent=2, ensure_ascii=False)
    return values

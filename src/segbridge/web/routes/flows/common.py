"""What the flow builder's pages share: the flow, the builder page with a pane open over it
(or the pane alone for htmx), the source's sample records, notices and pane state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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


def connection_name(request: Request, user: WebUser, connection_id: str) -> str:
    try:
        return runtime_of(request).connections.get(user.principal, connection_id).name
    except NotFound:
        return connection_id

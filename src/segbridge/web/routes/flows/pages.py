"""The flows list (Import YAML), Create flow, the builder page and its header's actions (rename,
enable/disable, run now, delete), and the flow's YAML (view, download, import)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from segbridge.core.errors import (
    Conflict,
    FieldProblem,
    NotFound,
    ValidationFailed,
)
from segbridge.core.yaml_input import MAX_YAML_CHARS
from segbridge.flows.views import FlowPublic
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
from segbridge.web.rendering import render
from segbridge.web.routes.flows.common import (
    LIST_PATH,
    Notice,
    builder_page,
    builder_url,
    find_flow,
    go,
    not_found,
    problems_at,
    show_pane,
)

router = APIRouter(include_in_schema=False)

YAML_MEDIA_TYPE = "text/yaml"


# ---- the list, create, import ----------------------------------------------------------------

@router.get(LIST_PATH)
def flow_list(request: Request, user: SignedIn, deleted: str = "") -> Response:
    notice = Notice("ok", f"Deleted the flow '{deleted}'.") if deleted else None
    return _list_page(request, user, notice=notice)


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
        return _new_page(request, user, values, problems_at(exc, ("name", "integration")),
                         status=422)
    return RedirectResponse(builder_url(flow.id), status_code=303)


async def _file_text(form: FormData, key: str = "file") -> str | None:
    """The text of an uploaded YAML file (None: no file chosen)."""
    upload = form.get(key)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    data = await upload.read(MAX_YAML_CHARS + 1)  # longer: refused by the service
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
    "lookup_removed": "Lookup removed.",
}


@router.get(LIST_PATH + "/{flow_id}")
def builder(request: Request, flow_id: str, user: SignedIn, done: str = "") -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    notice = Notice("ok", DONE[done]) if done in DONE else None
    return builder_page(request, user, flow, notice=notice)


def _header_action(request: Request, user: WebUser, flow_id: str, action: Any,
                   done: str) -> Response:
    """A header button: the builder again, with what happened or why not (409/422)."""
    try:
        action()
    except NotFound as exc:
        return not_found(user, exc)
    except (Conflict, ValidationFailed) as exc:
        flow = find_flow(request, user, flow_id)
        if isinstance(flow, Response):
            return flow
        text = exc.message if isinstance(exc, Conflict) else "; ".join(
            f"{p.message}" for p in exc.problems)
        status = 409 if isinstance(exc, Conflict) else 422
        return builder_page(request, user, flow, status=status,
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
        return not_found(user, exc)
    except Conflict as exc:
        flow = find_flow(request, user, flow_id)
        if isinstance(flow, Response):
            return flow
        return builder_page(request, user, flow, status=409,
                             notice=Notice("error", exc.message))
    return go(request, f"{LIST_PATH}?deleted={quote(name)}")


# ---- YAML ------------------------------------------------------------------------------------

@router.get(LIST_PATH + "/{flow_id}/yaml")
def yaml_pane(request: Request, flow_id: str, user: SignedIn) -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    return _yaml_pane(request, user, flow, [], None)


def _yaml_pane(request: Request, user: WebUser, flow: FlowPublic,
               problems: list[FieldProblem], notice: Notice | None,
               status: int = 200) -> Response:
    text = runtime_of(request).flows.export_yaml(user.principal, flow.id)
    context = {"yaml_text": text, "yaml_problems": problems, "pane_notice": notice}
    return show_pane(request, user, flow, "flows/pane_yaml.html", context, status=status)


@router.get(LIST_PATH + "/{flow_id}/flow.yaml")
def download_yaml(request: Request, flow_id: str, user: SignedIn) -> Response:
    flows = runtime_of(request).flows
    try:
        flow = flows.get(user.principal, flow_id)
        text = flows.export_yaml(user.principal, flow_id)
    except NotFound as exc:
        return not_found(user, exc)
    filename = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in flow.name) or "flow"
    return Response(text, media_type=YAML_MEDIA_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{filename}.yaml"',
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


@router.post(LIST_PATH + "/{flow_id}/yaml")
async def import_yaml_here(request: Request, flow_id: str, user: MayEditFlows,
                           form: CheckedForm) -> Response:
    """Import a file: it replaces this flow when it names it, else it creates (or updates)
    the flow of the name it gives; the builder of that flow follows."""
    flow = find_flow(request, user, flow_id)
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
    return go(request, f"{builder_url(imported.id)}?done=imported")

"""/api/v1/integrations, /flows, /runs and record errors: thin adapters over the services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.api.schemas import ErrorResponse, Strict, WholeNumber, name_field
from segbridge.core.yaml_input import MAX_YAML_CHARS
from segbridge.flows.service import SnapshotReset
from segbridge.flows.views import (
    FlowPublic,
    IntegrationPublic,
    PreviewPublic,
    RecordErrorPublic,
    RunPublic,
)
from segbridge.runs.lifecycle import FINISHED

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 404, 409, 422)}
router = APIRouter(responses=ERRORS)
MAX_OFFSET = 2**53 - 1  # the largest whole number every JSON reader keeps exactly
# A flow document is parsed by the service (every problem listed in our words, at its field
# path), not by FastAPI; the document says what it takes all the same.
FLOW_DOCUMENT_BODY = {"requestBody": {"content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/FlowDocument"}}}}}
RUN_EVENT = {  # each server-sent event of /progress (OpenAPI 3.2's itemSchema)
    "type": "object", "required": ["event", "data"],
    "properties": {"event": {"const": "run"},
                   "data": {"type": "string", "contentMediaType": "application/json"}}}


class IntegrationCreate(Strict):
    name: str = name_field("1-100 characters, unique in the account (case ignored)")


class ConnectionRef(Strict):
    connection_id: str


class RunRequest(Strict):
    fresh_message_ids: bool = Field(
        default=False, description="new messageIds: Segment will not deduplicate a resend")


class PreviewRequest(Strict):
    limit: WholeNumber = Field(default=10, ge=1, le=500)
    flow: dict[str, Any] | None = Field(default=None, description="an unsaved flow document")


class ErrorIds(Strict):
    error_ids: list[str]
    edits: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="error id -> corrected record (or call) data")


class ResolvedErrors(BaseModel):
    resolved: int = Field(description="how many open errors were marked resolved")


class EnabledBody(Strict):
    enabled: bool


class SnapshotResetRequest(Strict):
    confirm: Literal[True] = Field(description="true (required): the next run of the import "
                                               "sends every record again")


class Json(BaseModel):
    model_config = {"extra": "allow"}


# ---- integrations ----------------------------------------------------------------------

@router.get("/integrations", tags=["integrations"], operation_id="list_integrations")
def list_integrations(principal: CurrentPrincipal,
                      runtime: RuntimeDep) -> list[IntegrationPublic]:
    return runtime.integrations.list_all(principal)


@router.post("/integrations", status_code=201, tags=["integrations"],
             operation_id="create_integration")
def create_integration(body: IntegrationCreate, principal: CurrentPrincipal,
                       runtime: RuntimeDep) -> IntegrationPublic:
    return runtime.integrations.create(principal, body.name)


@router.get("/integrations/{integration_id}", tags=["integrations"],
            operation_id="get_integration")
def get_integration(integration_id: str, principal: CurrentPrincipal,
                    runtime: RuntimeDep) -> IntegrationPublic:
    return runtime.integrations.get(principal, integration_id)


@router.put("/integrations/{integration_id}", tags=["integrations"],
            operation_id="rename_integration")
def rename_integration(integration_id: str, body: IntegrationCreate,
                       principal: CurrentPrincipal, runtime: RuntimeDep) -> IntegrationPublic:
    return runtime.integrations.rename(principal, integration_id, body.name)


@router.delete("/integrations/{integration_id}", status_code=204, tags=["integrations"],
               operation_id="delete_integration")
def delete_integration(integration_id: str, principal: CurrentPrincipal,
                       runtime: RuntimeDep) -> Response:
    runtime.integrations.delete(principal, integration_id)
    return Response(status_code=204)


@router.post("/integrations/{integration_id}/connections", tags=["integrations"],
             operation_id="register_connection")
def register_connection(integration_id: str, body: ConnectionRef, principal: CurrentPrincipal,
                        runtime: RuntimeDep) -> IntegrationPublic:
    return runtime.integrations.register(principal, integration_id, body.connection_id)


# ---- flows -------------------------------------------------------------------------------

@router.get("/flows", tags=["flows"], operation_id="list_flows")
def list_flows(principal: CurrentPrincipal, runtime: RuntimeDep) -> list[FlowPublic]:
    return runtime.flows.list_all(principal)


@router.post("/flows", status_code=201, tags=["flows"], operation_id="create_flow",
             openapi_extra=FLOW_DOCUMENT_BODY)
def create_flow(body: Json, principal: CurrentPrincipal, runtime: RuntimeDep) -> FlowPublic:
    """Create a flow from its document; refused with every problem listed."""
    return runtime.flows.create(principal, body.model_dump())


@router.post("/flows/import", tags=["flows"], operation_id="import_flow_yaml",
             openapi_extra={"requestBody": {"content": {"application/yaml": {
                 "schema": {"type": "string"}}}}})
async def import_flow_yaml(request: Request, principal: CurrentPrincipal,
                           runtime: RuntimeDep) -> FlowPublic:
    """Create or update (by name) a flow from YAML (flows as code)."""
    text = (await _body_up_to(request, MAX_YAML_CHARS + 1)).decode("utf-8",
                                                                      errors="replace")
    return await asyncio.to_thread(runtime.flows.import_yaml, principal, text)


async def _body_up_to(request: Request, limit: int) -> bytes:
    """The body's first ``limit`` bytes (the rest is not read: a longer document is refused)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


@router.get("/flows/{flow_id}", tags=["flows"], operation_id="get_flow")
def get_flow(flow_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> FlowPublic:
    return runtime.flows.get(principal, flow_id)


@router.get("/flows/{flow_id}/yaml", tags=["flows"], operation_id="export_flow_yaml",
            response_class=PlainTextResponse)
def export_flow_yaml(flow_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> str:
    return runtime.flows.export_yaml(principal, flow_id)


@router.put("/flows/{flow_id}", tags=["flows"], operation_id="update_flow",
            openapi_extra=FLOW_DOCUMENT_BODY)
def update_flow(flow_id: str, body: Json, principal: CurrentPrincipal,
                runtime: RuntimeDep) -> FlowPublic:
    return runtime.flows.update(principal, flow_id, body.model_dump())


@router.put("/flows/{flow_id}/enabled", tags=["flows"], operation_id="set_flow_enabled")
def set_flow_enabled(flow_id: str, body: EnabledBody, principal: CurrentPrincipal,
                     runtime: RuntimeDep) -> FlowPublic:
    return runtime.flows.set_enabled(principal, flow_id, body.enabled)


@router.delete("/flows/{flow_id}", status_code=204, tags=["flows"], operation_id="delete_flow")
def delete_flow(flow_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> Response:
    runtime.flows.delete(principal, flow_id)
    return Response(status_code=204)


@router.post("/flows/{flow_id}/preview", tags=["flows"], operation_id="preview_flow",
             response_model_exclude_unset=True)  # an error for every import names none
def preview_flow(flow_id: str, body: PreviewRequest, principal: CurrentPrincipal,
                 runtime: RuntimeDep) -> PreviewPublic:
    """Dry run: the exact calls the first records would become, and their errors; sends nothing."""
    from segbridge.flows.preview import preview

    return preview(runtime, principal, flow_id, body.flow, body.limit)


@router.post("/flows/{flow_id}/imports/{import_name:path}/snapshot/reset", tags=["flows"],
             operation_id="reset_import_snapshot")
def reset_import_snapshot(flow_id: str, import_name: str, body: SnapshotResetRequest,
                          principal: CurrentPrincipal, runtime: RuntimeDep) -> SnapshotReset:
    """Forget what an import with sync: changed or new has sent: its next run sends every
    record. 422 without confirm: true; 409 while the flow runs. An import name with a '/'
    is sent encoded (``EU%2FUsers``)."""
    return runtime.flows.reset_snapshot(principal, flow_id, import_name, confirm=body.confirm)


# ---- runs --------------------------------------------------------------------------------

@router.post("/flows/{flow_id}/runs", status_code=202, tags=["runs"], operation_id="run_flow")
def run_flow(flow_id: str, principal: CurrentPrincipal, runtime: RuntimeDep,
             body: RunRequest | None = None) -> RunPublic:
    """Run now. 409 while the flow has a run queued, running or paused."""
    fresh = body.fresh_message_ids if body else False
    return runtime.flows.start_run(principal, flow_id, fresh_message_ids=fresh)


@router.get("/flows/{flow_id}/runs", tags=["runs"], operation_id="list_runs")
def list_runs(flow_id: str, principal: CurrentPrincipal,
              runtime: RuntimeDep) -> list[RunPublic]:
    return runtime.flows.list_runs(principal, flow_id)


@router.get("/runs/{run_id}", tags=["runs"], operation_id="get_run")
def get_run(run_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> RunPublic:
    return runtime.flows.get_run(principal, run_id)


@router.post("/runs/{run_id}/cancel", tags=["runs"], operation_id="cancel_run")
def cancel_run(run_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> RunPublic:
    return runtime.flows.cancel_run(principal, run_id)


@router.post("/runs/{run_id}/resume", status_code=202, tags=["runs"], operation_id="resume_run")
def resume_run(run_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> RunPublic:
    """Resume a run from its checkpoint: one whose process was killed, or one that failed by a
    crash (``crashed:``). 409 for a run another process executes, or one that failed for its
    data or configuration."""
    return runtime.flows.resume_run(principal, run_id,
                                    lease_seconds=runtime.settings.run_lease_seconds)


@router.get("/runs/{run_id}/progress", tags=["runs"], operation_id="stream_run_progress",
            response_class=StreamingResponse, responses={200: {
                "description": "`event: run` with the run as JSON, until it ends",
                "content": {"text/event-stream": {"itemSchema": RUN_EVENT}}}})
async def stream_run_progress(run_id: str, principal: CurrentPrincipal,
                              runtime: RuntimeDep) -> StreamingResponse:
    """Server-sent events: the run as it progresses, until it ends."""
    first = await asyncio.to_thread(runtime.flows.get_run, principal, run_id)

    async def events() -> AsyncIterator[bytes]:
        run = first
        while True:
            yield b"event: run\ndata: " + orjson.dumps(run.as_json()) + b"\n\n"
            if run.status in FINISHED:
                return
            await asyncio.sleep(0.5)
            run = await asyncio.to_thread(runtime.flows.get_run, principal, run_id)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


# ---- record errors -----------------------------------------------------------------------

@router.get("/flows/{flow_id}/errors", tags=["errors"], operation_id="list_errors")
def list_errors(flow_id: str, principal: CurrentPrincipal, runtime: RuntimeDep,
                status: str | None = "open", run_id: str | None = None,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> list[RecordErrorPublic]:
    """A page of the flow's record errors, oldest first; ``offset`` pages on (a run's
    ``counts.failed`` says how many there are)."""
    return runtime.flows.list_errors(principal, flow_id, status=status or None, run_id=run_id,
                                     limit=limit, offset=offset)


@router.post("/flows/{flow_id}/errors/resolve", tags=["errors"], operation_id="resolve_errors")
def resolve_errors(flow_id: str, body: ErrorIds, principal: CurrentPrincipal,
                   runtime: RuntimeDep) -> ResolvedErrors:
    return ResolvedErrors(resolved=runtime.flows.resolve_errors(principal, flow_id,
                                                                body.error_ids))


@router.post("/flows/{flow_id}/errors/retry", status_code=202, tags=["errors"],
             operation_id="retry_errors")
def retry_errors(flow_id: str, body: ErrorIds, principal: CurrentPrincipal,
                 runtime: RuntimeDep) -> RunPublic:
    """Send the records of these errors again (with edited data where given), as a run."""
    return runtime.flows.retry_errors(principal, flow_id, body.error_ids, body.edits)

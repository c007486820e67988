"""/api/v1/connections: thin adapters over ConnectionService."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.api.schemas import (
    AuditPublic,
    ConnectionCreate,
    ConnectionPublic,
    ConnectionTest,
    ConnectionUpdate,
    ErrorResponse,
    TestResult,
)
from segbridge.connections.model import ConnectionDraft

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 404, 409, 422)
}
router = APIRouter(prefix="/connections", tags=["connections"], responses=ERRORS)


@router.get("", operation_id="list_connections")
def list_connections(principal: CurrentPrincipal, runtime: RuntimeDep) -> list[ConnectionPublic]:
    return runtime.connections.list_all(principal)


@router.post("", status_code=201, operation_id="create_connection")
def create_connection(
    body: ConnectionCreate, principal: CurrentPrincipal, runtime: RuntimeDep
) -> ConnectionPublic:
    """Save: tests the connection, then commits it for the whole account (422 if the test fails)."""
    draft = ConnectionDraft(**body.model_dump())
    connection, _result = runtime.connections.create(principal, draft)
    return connection


@router.post("/test", operation_id="test_unsaved_connection")
def test_unsaved_connection(
    body: ConnectionTest, principal: CurrentPrincipal, runtime: RuntimeDep
) -> TestResult:
    """Test connection for a configuration that is not saved; stores nothing."""
    draft = ConnectionDraft(name="", application=body.application, settings=body.settings)
    return TestResult(**runtime.connections.test_draft(principal, draft).public())


@router.get("/{connection_id}", operation_id="get_connection")
def get_connection(
    connection_id: str, principal: CurrentPrincipal, runtime: RuntimeDep
) -> ConnectionPublic:
    return runtime.connections.get(principal, connection_id)


@router.put("/{connection_id}", operation_id="update_connection")
def update_connection(
    connection_id: str, body: ConnectionUpdate, principal: CurrentPrincipal, runtime: RuntimeDep
) -> ConnectionPublic:
    """Save an edit: the write key must be entered again; tests, then commits."""
    draft = ConnectionDraft(**body.model_dump())
    connection, _result = runtime.connections.update(principal, connection_id, draft)
    return connection


@router.delete("/{connection_id}", status_code=204, operation_id="delete_connection")
def delete_connection(
    connection_id: str, principal: CurrentPrincipal, runtime: RuntimeDep
) -> Response:
    runtime.connections.delete(principal, connection_id)
    return Response(status_code=204)


@router.post("/{connection_id}/test", operation_id="test_connection")
def test_connection(
    connection_id: str, principal: CurrentPrincipal, runtime: RuntimeDep
) -> TestResult:
    """Test a saved connection; its status becomes online or offline."""
    return TestResult(**runtime.connections.test_saved(principal, connection_id).public())


@router.get("/{connection_id}/audit", operation_id="connection_audit")
def connection_audit(
    connection_id: str, principal: CurrentPrincipal, runtime: RuntimeDep
) -> list[AuditPublic]:
    return runtime.connections.audit(principal, connection_id)

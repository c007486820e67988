"""/healthz (alive), /readyz (ready to serve) and /metrics (Prometheus), outside /api/v1.

/healthz and /readyz need no sign-in and name no URL or host; /metrics needs its token, or a
loopback client when no token is set (``observability.health.metrics_refusal``). The same
router serves a worker's port (``observability.serve``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from segbridge.api.deps import RuntimeDep
from segbridge.api.errors import error_body
from segbridge.observability.health import PROXY_HEADERS, metrics_refusal, readiness
from segbridge.observability.metrics import registry_for

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Alive: the process answers (no database call)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready: the database answers, its migrations are current, the job queue answers."""
    state = readiness(runtime.db)
    if state.ready:
        return JSONResponse({"status": "ok", "checks": state.checks})
    return JSONResponse({"status": "unavailable", "failed": state.failed,
                         "checks": state.checks}, status_code=503)


@router.get("/metrics")
def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus' text format: this process's delivery counters and the database's
    aggregates."""
    refusal = metrics_refusal(runtime.settings.metrics_token,
                              request.client.host if request.client else None,
                              request.headers.get("Authorization"),
                              proxied=any(name in request.headers for name in PROXY_HEADERS))
    if refusal is not None:
        headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
        return JSONResponse(error_body(refusal.code, refusal.message),
                            status_code=refusal.status, headers=headers)
    return Response(generate_latest(registry_for(runtime.db)), media_type=CONTENT_TYPE_LATEST)

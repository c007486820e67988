"""The REST API as a FastAPI app: its routes under /api/v1, sign-in, errors and the contract.

The server's whole app (the API, the web UI, the local Segment) is assembled in
``segbridge.assembly``; this module knows nothing of the pages or of the receiver.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

import segbridge
from segbridge.api.errors import install_error_handlers
from segbridge.api.input_checks import refuse_nul_characters
from segbridge.api.openapi import install_contract, install_docs_page
from segbridge.api.routes import (
    accounts,
    alerts,
    applications,
    auth,
    connections,
    flows,
    health,
    hooks,
    uploads,
    users,
)
from segbridge.api.routes import tokens as api_tokens
from segbridge.runtime import Runtime

INPUT_CHECKS = [Depends(refuse_nul_characters)]


def create_api(runtime: Runtime) -> FastAPI:
    """The app with the REST API under /api/v1, its error answers and its OpenAPI document."""
    app = FastAPI(
        title="segbridge",
        version=segbridge.__version__,
        description="Self-hosted integration platform for Segment.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # install_docs_page: Swagger UI from this server, not a CDN
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.include_router(hooks.receiver)  # POST /hooks/<token>: first, it is the busiest route
    install_error_handlers(app)
    install_contract(app, runtime.registry.all)
    install_docs_page(app)
    api = APIRouter(prefix="/api/v1")
    api.include_router(applications.router)
    api.include_router(connections.router)
    api.include_router(flows.router)
    api.include_router(uploads.router)
    api.include_router(users.router)
    api.include_router(accounts.router)
    api.include_router(api_tokens.router)
    api.include_router(alerts.router)
    api.include_router(hooks.router)
    app.include_router(api, dependencies=INPUT_CHECKS)
    app.include_router(health.router)  # /healthz, /readyz, /metrics
    return app


def include_sign_in(app: FastAPI) -> None:
    """Sign in and out (password, one-time link) and who am I."""
    app.include_router(auth.router, dependencies=INPUT_CHECKS)


"""The segbridge ASGI application: REST API, login, and the local Segment mounted at /sandbox."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

import segbridge
from segbridge.api.errors import install_error_handlers
from segbridge.api.input_checks import refuse_nul_characters
from segbridge.api.openapi import install_contract
from segbridge.api.routes import (
    accounts,
    applications,
    auth,
    connections,
    flows,
    uploads,
    users,
)
from segbridge.api.routes import tokens as api_tokens
from segbridge.runtime import Runtime
from segbridge.web import mount_web

INPUT_CHECKS = [Depends(refuse_nul_characters)]


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="segbridge",
        version=segbridge.__version__,
        description="Self-hosted integration platform for Segment.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    install_contract(app, runtime.registry.all)
    api = APIRouter(prefix="/api/v1")
    api.include_router(applications.router)
    api.include_router(connections.router)
    api.include_router(flows.router)
    api.include_router(uploads.router)
    api.include_router(users.router)
    api.include_router(accounts.router)
    api.include_router(api_tokens.router)
    app.include_router(api, dependencies=INPUT_CHECKS)
    mount_web(app)  # the web UI; before auth: its GET /login also serves the sign-in form
    app.include_router(auth.router, dependencies=INPUT_CHECKS)
    app.add_api_route("/healthz", _health, methods=["GET"], include_in_schema=False)
    if runtime.settings.sandbox_enabled:
        _mount_sandbox(app, runtime)
    return app


def _health() -> dict[str, str]:
    return {"status": "ok", "version": segbridge.__version__}


def _mount_sandbox(app: FastAPI, runtime: Runtime) -> None:
    from segbridge.api.deps import sandbox_caller
    from segbridge.sandbox import SandboxConfig, create_sandbox_app

    config = SandboxConfig(
        state_path=runtime.settings.home / "sandbox.sqlite3",
        unknown_key_mode=runtime.settings.sandbox_unknown_key_mode,
    )
    sandbox = create_sandbox_app(
        config,
        authorize=sandbox_caller,  # each account: its own sources, Debugger and faults
    )
    sandbox.state.segbridge_runtime = runtime
    app.state.sandbox_app = sandbox
    app.mount("/sandbox", sandbox)

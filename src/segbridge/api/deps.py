"""FastAPI dependencies: the runtime and the caller (API token or browser session + CSRF)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from segbridge.accounts import service as accounts
from segbridge.accounts.service import Principal
from segbridge.accounts.sessions import CSRF_HEADER, SESSION_COOKIE, csrf_token_for
from segbridge.core.errors import NotAuthenticated, PermissionDenied
from segbridge.runtime import Runtime

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def principal_from_request(request: Request, runtime: Runtime) -> Principal:
    """Authenticate by ``Authorization: Bearer <token>`` or by the session cookie."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        with runtime.db.session() as session:
            return accounts.authenticate_token(session, header[7:].strip(), kinds=("api",))
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with runtime.db.session() as session:
            principal = accounts.authenticate_token(session, cookie, kinds=("session",))
        if request.method not in SAFE_METHODS:
            _check_csrf(request, cookie)
        return principal
    raise NotAuthenticated(
        "Sign in first: send `Authorization: Bearer <token>` (create one with "
        "`segbridge users token EMAIL`) or use the login link.")


def _check_csrf(request: Request, session_token: str) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent, csrf_token_for(session_token)):
        raise PermissionDenied(
            f"This request from a browser session lacks a valid {CSRF_HEADER} header; "
            "reload the page and try again.")


def current_principal(request: Request, runtime: RuntimeDep) -> Principal:
    return principal_from_request(request, runtime)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


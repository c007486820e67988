"""FastAPI dependencies: the runtime and the caller (API token or browser session + CSRF)."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from segbridge.accounts import service as accounts
from segbridge.accounts.service import Principal
from segbridge.core.errors import NotAuthenticated, PermissionDenied
from segbridge.runtime import Runtime

if TYPE_CHECKING:
    from segbridge.sandbox.auth import Caller as SandboxCaller

SESSION_COOKIE = "segbridge_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def csrf_token_for(session_token: str) -> str:
    """The CSRF token of a browser session, derived so nothing more is stored."""
    return hashlib.sha256(f"csrf|{session_token}".encode()).hexdigest()[:40]


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


def sandbox_caller(request: Request) -> SandboxCaller | None:
    """For the mounted local Segment: the caller's account and what its role may do there.

    None when the request is not signed in (or a browser change lacks its CSRF token). By the
    account's roles (``accounts.roles``): a monitor reads the sources and their counters but
    not the events' data and changes nothing; manage and admin change sources and read the
    Debugger; only admins set faults.
    """
    from segbridge.accounts.roles import Permission, may
    from segbridge.sandbox.auth import Caller

    try:
        principal = principal_from_request(request, request.app.state.segbridge_runtime)
    except (NotAuthenticated, PermissionDenied):
        return None
    return Caller(principal.account_id,
                  can_manage=may(principal, Permission.EDIT_CONNECTIONS),
                  can_admin=may(principal, Permission.SET_SANDBOX_FAULTS),
                  can_see_events=may(principal, Permission.VIEW_RECORD_DATA))

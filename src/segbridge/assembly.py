"""The server's app, assembled in one place: the REST API, the web UI and the local Segment.

``segbridge.api`` knows nothing of the pages or of the receiver, and the receiver nothing of
segbridge: here the receiver is given its host's checks (who calls, in which account, with
which role; the browser session's CSRF token) and the pages are given the receiver's handle
(``app.state.local_segment``, a ``LocalSegment``, or None when it is not enabled).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request

from segbridge.accounts.roles import Permission, may
from segbridge.accounts.sessions import csrf_token_of_cookies
from segbridge.api.app import create_api, include_sign_in
from segbridge.api.deps import principal_from_request
from segbridge.core.errors import NotAuthenticated, PermissionDenied
from segbridge.runtime import Runtime
from segbridge.sandbox import LocalSegment, SandboxConfig, create_local_segment
from segbridge.sandbox.auth import Caller, CallerFor
from segbridge.web import mount_web
from segbridge.web.local_segment import local_segment_layout

SANDBOX_PATH = "/sandbox"


def create_app(runtime: Runtime) -> FastAPI:
    app = create_api(runtime)
    mount_web(app)  # the web UI; before sign-in: its GET /login also serves the sign-in form
    include_sign_in(app)
    app.state.local_segment = None
    if runtime.settings.sandbox_enabled:
        app.state.local_segment = _mount_local_segment(app, runtime)
    return app


def local_segment_of(app: object) -> LocalSegment | None:
    """The local Segment mounted in this app (None when it is not enabled)."""
    segment: LocalSegment | None = getattr(getattr(app, "state", None), "local_segment", None)
    return segment


def _mount_local_segment(app: FastAPI, runtime: Runtime) -> LocalSegment:
    config = SandboxConfig(
        state_path=runtime.settings.home / "sandbox.sqlite3",
        unknown_key_mode=runtime.settings.sandbox_unknown_key_mode,
    )
    segment = create_local_segment(
        config,
        authorize=sandbox_caller(runtime),  # each account: its own sources, Debugger and faults
        csrf_token=_csrf_token,
        layout=local_segment_layout(runtime),  # the pages in the app's layout and top bar
    )
    app.mount(SANDBOX_PATH, segment.app)
    return segment


def _csrf_token(request: Request) -> str | None:
    return csrf_token_of_cookies(dict(request.cookies))


def sandbox_caller(runtime: Runtime) -> CallerFor:
    """For the mounted local Segment: the caller's account and what its role may do there.

    None when the request is not signed in (or a browser change lacks its CSRF token). By the
    account's roles (``accounts.roles``): a monitor reads the sources and their counters but
    not the events' data and changes nothing; manage and admin change sources and read the
    Debugger; only admins set faults.
    """

    def caller(request: Request) -> Caller | None:
        try:
            principal = principal_from_request(request, runtime)
        except (NotAuthenticated, PermissionDenied):
            return None
        return Caller(principal.account_id,
                      can_manage=may(principal, Permission.EDIT_CONNECTIONS),
                      can_admin=may(principal, Permission.SET_SANDBOX_FAULTS),
                      can_see_events=may(principal, Permission.VIEW_RECORD_DATA))

    return caller

"""The local Segment's pages set in the app's layout: its top bar, navigation and styles.

The receiver (``segbridge.sandbox``) knows nothing of segbridge: it hands each page in pieces
(``HostedPage``) to the layout the assembly gives it, made here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import SESSION_COOKIE, csrf_token_for
from segbridge.core.errors import NotAuthenticated
from segbridge.runtime import Runtime
from segbridge.web.auth import WebUser
from segbridge.web.rendering import render

if TYPE_CHECKING:
    from segbridge.sandbox import HostedPage


def local_segment_layout(runtime: Runtime) -> Callable[[Request, HostedPage], Response]:
    """For ``create_local_segment(layout=...)``: the page in base.html, with the top bar of
    the signed-in browser session (none for an API token's request)."""

    def layout(request: Request, page: HostedPage) -> Response:
        return render("local_segment/page.html", status=page.status,
                      user=_session_user(request, runtime), nav="sandbox", page=page)

    return layout


def _session_user(request: Request, runtime: Runtime) -> WebUser | None:
    """The browser session's user (the mounted receiver's request has no app runtime)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        with runtime.db.session() as session:
            principal = accounts.authenticate_token(session, token, kinds=("session",))
    except NotAuthenticated:
        return None
    return WebUser(principal, csrf_token_for(token))

"""Who is using the pages: the browser session (cookie), and the CSRF check on every POST.

A page request without a valid session is sent to the login page (``LoginRequired``); a POST
whose ``csrf_token`` field (or ``X-CSRF-Token`` header, as htmx sends it) does not match the
session is refused (``CsrfRejected``). The login form itself, before any session exists, is
protected by a double-submit token: a random cookie that the form must repeat.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import FormData

from segbridge.accounts import service as accounts
from segbridge.accounts.roles import Permission, may, require
from segbridge.accounts.service import Principal
from segbridge.accounts.sessions import CSRF_HEADER, SESSION_COOKIE, csrf_token_for
from segbridge.core.errors import NotAuthenticated, PermissionDenied
from segbridge.runtime import Runtime

LOGIN_PATH = "/login"
CSRF_FIELD = "csrf_token"
LOGIN_CSRF_COOKIE = "segbridge_login_csrf"


class LoginRequired(Exception):
    """No valid session: send the browser to the login page, then back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRejected(Exception):
    """A POST without the session's CSRF token."""


class PageForbidden(Exception):
    """The signed-in user's role may not open this page or use this button (403 page)."""

    def __init__(self, user: WebUser, message: str) -> None:
        super().__init__(message)
        self.user = user
        self.message = message


@dataclass(frozen=True)
class WebUser:
    principal: Principal
    csrf_token: str

    @property
    def email(self) -> str:
        return self.principal.email


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def safe_next(path: str | None) -> str:
    """A local path to return to after login (never another site)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def login_url(next_path: str) -> str:
    if next_path == "/":
        return LOGIN_PATH
    return f"{LOGIN_PATH}?next={quote(next_path, safe='/')}"


def _here(request: Request) -> str:
    if request.method != "GET":
        return "/connections"
    query = f"?{request.url.query}" if request.url.query else ""
    return request.url.path + query


def session_user(request: Request) -> WebUser | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        with runtime_of(request).db.session() as session:
            principal = accounts.authenticate_token(session, token, kinds=("session",))
    except NotAuthenticated:
        return None
    return WebUser(principal, csrf_token_for(token))


def signed_in(request: Request) -> WebUser:
    user = session_user(request)
    if user is None:
        raise LoginRequired(_here(request))
    return user


SignedIn = Annotated[WebUser, Depends(signed_in)]


def signed_in_with(permission: Permission) -> Callable[[Request], WebUser]:
    """A dependency: the signed-in user, whose role must allow ``permission`` (else 403)."""

    def dependency(request: Request) -> WebUser:
        user = signed_in(request)
        try:
            require(user.principal, permission)
        except PermissionDenied as exc:
            raise PageForbidden(user, exc.message) from None
        return user

    return dependency


MayEditConnections = Annotated[WebUser, Depends(signed_in_with(Permission.EDIT_CONNECTIONS))]
MayTestConnections = Annotated[WebUser, Depends(signed_in_with(Permission.TEST_CONNECTIONS))]
MayManageUsers = Annotated[WebUser, Depends(signed_in_with(Permission.MANAGE_USERS))]
MayEditFlows = Annotated[WebUser, Depends(signed_in_with(Permission.EDIT_FLOWS))]
MayRunFlows = Annotated[WebUser, Depends(signed_in_with(Permission.RUN_FLOWS))]
MayHandleErrors = Annotated[WebUser, Depends(signed_in_with(Permission.HANDLE_ERRORS))]
MayPreview = Annotated[WebUser, Depends(signed_in_with(Permission.PREVIEW))]
MayUpload = Annotated[WebUser, Depends(signed_in_with(Permission.UPLOAD))]


def can(user: WebUser | None, permission: str) -> bool:
    """For templates: may the user do this (``Permission`` by name, e.g. ``EDIT_FLOWS``)?"""
    return user is not None and may(user.principal, Permission[permission])


def tokens_match(sent: str, expected: str) -> bool:
    return bool(sent) and hmac.compare_digest(sent.encode(), expected.encode())


def form_text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


async def posted_form(request: Request) -> FormData:
    return await request.form()


PostedForm = Annotated[FormData, Depends(posted_form)]


async def checked_form(request: Request, user: SignedIn) -> FormData:
    """The posted form, once its CSRF token matched the session's."""
    form = await request.form()
    sent = form_text(form, CSRF_FIELD) or request.headers.get(CSRF_HEADER, "")
    if not tokens_match(sent, user.csrf_token):
        raise CsrfRejected
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)

"""Sign in (one-time link or email and password) and sign out.

Signing out must leave a way back in: a user with no password (signed in with a login link)
is first asked to set one (or to sign out anyway), and the sign-in page after signing out
says how to get a new login link. This server sends no email, so the page names the one way
there is: an admin runs ``segbridge users login-link EMAIL`` on the server.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from segbridge.accounts import credentials
from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import SESSION_COOKIE
from segbridge.api.routes.auth import client_address, set_session_cookie
from segbridge.core.errors import NotAuthenticated, TooManyAttempts
from segbridge.web.auth import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    LOGIN_PATH,
    CheckedForm,
    PostedForm,
    SignedIn,
    WebUser,
    form_text,
    new_login_csrf,
    runtime_of,
    safe_next,
    session_user,
    tokens_match,
)
from segbridge.web.rendering import render

router = APIRouter(include_in_schema=False)
SIGNED_OUT = f"{LOGIN_PATH}?signed_out=1"
LOGIN_LINK_COMMAND = "segbridge users login-link"


@router.get(LOGIN_PATH)
def login_page(request: Request, token: str | None = None, next: str | None = None,
               signed_out: str | None = None) -> Response:
    target = safe_next(next)
    if token:
        return _redeem_link(request, token, target)
    if session_user(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_form(target, email="", error=None, signed_out=bool(signed_out))


@router.post(LOGIN_PATH)
def login_submit(request: Request, form: PostedForm) -> Response:
    target = safe_next(form_text(form, "next"))
    email = form_text(form, "email").strip()
    if not tokens_match(form_text(form, CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE, "")):
        return _login_form(target, email=email, status=403,
                           error="The sign-in form expired. Please try again.")
    try:
        token = accounts.login_with_password(runtime_of(request).db, email,
                                             form_text(form, "password"),
                                             address=client_address(request))
    except TooManyAttempts as exc:
        return _login_form(target, email=email, error=exc.message, status=429,
                           headers={"Retry-After": str(max(1, round(exc.retry_after)))})
    except NotAuthenticated as exc:
        return _login_form(target, email=email, error=exc.message, status=401)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


@router.post("/logout")
def logout(request: Request, form: CheckedForm, user: SignedIn) -> Response:
    token = request.cookies.get(SESSION_COOKIE, "")
    with runtime_of(request).db.session() as session:
        if form_text(form, "anyway") != "yes" and not credentials.has_password(
                session, user.principal):
            return _no_password_yet(user)
        accounts.revoke_token(session, token)
    response = RedirectResponse(SIGNED_OUT, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _redeem_link(request: Request, token: str, target: str) -> Response:
    try:
        with runtime_of(request).db.session() as session:
            session_token = accounts.redeem_login_link(session, token)
    except NotAuthenticated as exc:
        return _login_form(target, email="", error=exc.message, status=401)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, session_token)
    return response


def _no_password_yet(user: WebUser) -> Response:
    """Before a user with no password signs out: set one first, or sign out anyway."""
    return render("account/sign_out.html", user=user, nav="account",
                  login_link_command=LOGIN_LINK_COMMAND)


def _login_form(target: str, *, email: str, error: str | None, status: int = 200,
                headers: dict[str, str] | None = None, signed_out: bool = False) -> Response:
    csrf = new_login_csrf()
    response = render("login.html", status=status, headers=headers, user=None, next=target,
                      email=email, error=error, csrf_field=CSRF_FIELD, login_csrf=csrf,
                      signed_out=signed_out, login_link_command=LOGIN_LINK_COMMAND)
    response.set_cookie(LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict",
                        path=LOGIN_PATH, max_age=3600)
    return response

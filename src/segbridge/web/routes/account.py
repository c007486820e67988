"""Your account (top bar > Account): your API tokens (create, list, revoke) and your password.

Plain forms, each with the session's CSRF token. A new token is shown in the answer to its
POST, this once (the page is ``Cache-Control: no-store``); it is never put in a URL.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from segbridge.accounts import credentials
from segbridge.accounts.credentials import ApiTokenCreated, ApiTokenPublic
from segbridge.accounts.roles import Permission, may
from segbridge.accounts.service import Principal
from segbridge.accounts.sessions import SESSION_COOKIE
from segbridge.api.routes.auth import client_address
from segbridge.core.errors import FieldProblem, NotFound, TooManyAttempts, ValidationFailed
from segbridge.web.auth import CheckedForm, SignedIn, WebUser, form_text, runtime_of
from segbridge.web.forms import FieldErrors
from segbridge.web.rendering import render

router = APIRouter(include_in_schema=False)
PAGE = "/account"
TOKEN_FIELDS = ("name", "expires_in_days")
PASSWORD_FIELDS = ("current_password", "new_password", "new_password_again")
EXPIRY_CHOICES = (("", "Never"), ("7", "In 7 days"), ("30", "In 30 days"),
                  ("90", "In 90 days"), ("365", "In a year"))
DONE = {"revoked": "The token was revoked; it no longer works.",
        "password": "Your password was saved. Your other browser sessions were signed out.",
        "sessions": "Your other browser sessions were signed out."}


@router.get(PAGE)
def account_page(request: Request, user: SignedIn, done: str = "") -> Response:
    return _page(request, user, flash=DONE.get(done))


@router.post(PAGE + "/tokens")
def create_token(request: Request, user: SignedIn, form: CheckedForm) -> Response:
    name, days = form_text(form, "name"), form_text(form, "expires_in_days").strip()
    try:
        with runtime_of(request).db.session() as session:
            created = credentials.create_api_token(session, user.principal, name,
                                                   _days(days))
    except ValidationFailed as exc:
        return _page(request, user, status=422, token_form={"name": name, "days": days},
                     token_errors=FieldErrors.of(exc.problems, TOKEN_FIELDS))
    return _page(request, user, status=201, new_token=created)


@router.post(PAGE + "/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: str, user: SignedIn,
                 _form: CheckedForm) -> Response:
    try:
        with runtime_of(request).db.session() as session:
            credentials.revoke_token(session, user.principal, token_id)
    except NotFound as exc:
        return _page(request, user, status=404, problem=exc.message)
    return RedirectResponse(f"{PAGE}?done=revoked", status_code=303)


@router.post(PAGE + "/sessions/end")
def end_other_sessions(request: Request, user: SignedIn, _form: CheckedForm) -> Response:
    """Sign out every other browser of the user (a lost laptop, a shared computer)."""
    with runtime_of(request).db.session() as session:
        credentials.end_sessions(session, user.principal.user_id or "",
                                 keep=request.cookies.get(SESSION_COOKIE))
    return RedirectResponse(f"{PAGE}?done=sessions", status_code=303)


@router.post(PAGE + "/password")
def change_password(request: Request, user: SignedIn, form: CheckedForm) -> Response:
    try:
        _change_password(request, user, form)
    except ValidationFailed as exc:
        problems = [_on_form(p) for p in exc.problems]
        return _page(request, user, status=422,
                     password_errors=FieldErrors.of(problems, PASSWORD_FIELDS))
    return RedirectResponse(f"{PAGE}?done=password", status_code=303)


def _change_password(request: Request, user: WebUser, form: FormData) -> None:
    new = form_text(form, "new_password")
    if new != form_text(form, "new_password_again"):
        raise ValidationFailed([FieldProblem(
            "new_password_again", "enter the same new password twice")])
    try:
        credentials.change_password(runtime_of(request).db, user.principal,
                                    form_text(form, "current_password") or None, new,
                                    address=client_address(request),
                                    keep_session=request.cookies.get(SESSION_COOKIE))
    except TooManyAttempts as exc:
        raise ValidationFailed([FieldProblem("current_password", exc.message)]) from exc


def _on_form(problem: FieldProblem) -> FieldProblem:
    """The service names the new password ``password``; the form, ``new_password``."""
    if problem.field == "password":
        return FieldProblem("new_password", problem.message)
    return problem


def _days(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 6:
        raise ValidationFailed([FieldProblem(
            "expires_in_days", "choose when the token expires, or Never")])
    return int(text)


def _page(request: Request, user: WebUser, *, status: int = 200, flash: str | None = None,
          problem: str | None = None, new_token: ApiTokenCreated | None = None,
          token_form: dict[str, str] | None = None, token_errors: FieldErrors | None = None,
          password_errors: FieldErrors | None = None) -> Response:
    principal = user.principal
    with runtime_of(request).db.session() as session:
        tokens = credentials.list_tokens(session, principal)
        others = _others_tokens(session, principal)
        has_password = credentials.has_password(session, principal)
        other_sessions = credentials.count_other_sessions(
            session, principal, request.cookies.get(SESSION_COOKIE))
    context: dict[str, Any] = {
        "user": user, "nav": "account", "tokens": tokens, "has_password": has_password,
        "others_tokens": others, "other_sessions": other_sessions,
        "flash": flash, "problem": problem, "new_token": new_token,
        "token_form": token_form or {"name": "", "days": ""},
        "token_errors": token_errors or FieldErrors.none(),
        "password_errors": password_errors or FieldErrors.none(),
        "expiry_choices": EXPIRY_CHOICES}
    return render("account/page.html", status=status, **context)


def _others_tokens(session: Session, principal: Principal) -> list[ApiTokenPublic] | None:
    """For an admin, the API tokens of the account's other users (else None: not shown)."""
    if not may(principal, Permission.MANAGE_OTHERS_TOKENS):
        return None
    return [token for token in credentials.list_tokens(session, principal, whole_account=True)
            if token.user_email != principal.email]

"""Users (top bar, admins only): the account's users; invite one with a role, change a role,
disable, enable or remove a user. Every change is the service's (accounts/members.py), which
checks the role again and keeps the last admin; its refusals are shown on the page.

An invitation's one-time login link is shown in the answer to its POST, this once (the page
is ``Cache-Control: no-store``), to hand over to the new user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from segbridge.accounts import members
from segbridge.accounts.roles import ROLES
from segbridge.core.errors import SegbridgeError
from segbridge.runtime import login_url
from segbridge.web.auth import CheckedForm, MayManageUsers, WebUser, form_text, runtime_of
from segbridge.web.rendering import render

router = APIRouter(include_in_schema=False)
PAGE = "/users"
DONE = {"role": "The role was changed.", "disabled": "The user was disabled; their sessions "
        "and tokens no longer work.", "enabled": "The user was enabled.",
        "removed": "The user and every token of theirs were removed."}


@router.get(PAGE)
def users_page(request: Request, user: MayManageUsers, done: str = "") -> Response:
    return _page(request, user, flash=DONE.get(done))


@router.post(PAGE)
def invite(request: Request, user: MayManageUsers, form: CheckedForm) -> Response:
    email, role = form_text(form, "email"), form_text(form, "role")
    try:
        with runtime_of(request).db.session() as session:
            invitation = members.invite(session, user.principal, email, role)
    except SegbridgeError as exc:
        return _page(request, user, status=exc.http_status, problem=exc.message,
                     invite_form={"email": email, "role": role})
    assert invitation.login_token is not None
    link = login_url(runtime_of(request), invitation.login_token)
    return _page(request, user, status=201, invited=invitation.user, link=link)


@router.post(PAGE + "/{user_id}/role")
def change_role(request: Request, user_id: str, user: MayManageUsers,
                form: CheckedForm) -> Response:
    role = form_text(form, "role")
    return _change(request, user, "role",
                   lambda session: members.change_role(session, user.principal, user_id, role))


@router.post(PAGE + "/{user_id}/disable")
def disable(request: Request, user_id: str, user: MayManageUsers,
            _form: CheckedForm) -> Response:
    return _change(request, user, "disabled",
                   lambda session: members.disable(session, user.principal, user_id))


@router.post(PAGE + "/{user_id}/enable")
def enable(request: Request, user_id: str, user: MayManageUsers,
           _form: CheckedForm) -> Response:
    return _change(request, user, "enabled",
                   lambda session: members.enable(session, user.principal, user_id))


@router.post(PAGE + "/{user_id}/remove")
def remove(request: Request, user_id: str, user: MayManageUsers,
           _form: CheckedForm) -> Response:
    return _change(request, user, "removed",
                   lambda session: members.remove(session, user.principal, user_id))


def _change(request: Request, user: WebUser, done: str,
            change: Callable[[Session], object]) -> Response:
    try:
        with runtime_of(request).db.session() as session:
            change(session)
    except SegbridgeError as exc:
        return _page(request, user, status=exc.http_status, problem=exc.message)
    return RedirectResponse(f"{PAGE}?done={done}", status_code=303)


def _page(request: Request, user: WebUser, *, status: int = 200, flash: str | None = None,
          problem: str | None = None, invited: members.UserPublic | None = None,
          link: str | None = None, invite_form: dict[str, str] | None = None) -> Response:
    with runtime_of(request).db.session() as session:
        users = members.list_members(session, user.principal)
    context: dict[str, Any] = {
        "user": user, "nav": "users", "users": users, "roles": ROLES, "flash": flash,
        "problem": problem, "invited": invited, "link": link,
        "invite_form": invite_form or {"email": "", "role": "manage"}}
    return render("users/page.html", status=status, **context)

"""/api/v1/users: the account's users, as its admins manage them (accounts/members.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from segbridge.accounts import members
from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.api.schemas import (
    ErrorResponse,
    InvitationPublic,
    UserInvite,
    UserPublic,
    UserRoleChange,
)
from segbridge.runtime import login_url

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)}
router = APIRouter(prefix="/users", tags=["users"], responses=ERRORS)


@router.get("", operation_id="list_users")
def list_users(principal: CurrentPrincipal, runtime: RuntimeDep) -> list[UserPublic]:
    """The account's users (admins only)."""
    with runtime.db.session() as session:
        return [UserPublic.model_validate(u) for u in members.list_members(session, principal)]


@router.post("", status_code=201, operation_id="invite_user")
def invite_user(body: UserInvite, principal: CurrentPrincipal,
                runtime: RuntimeDep) -> InvitationPublic:
    """Invite a user with a role; answers a one-time login link to hand over (valid 24 h)."""
    with runtime.db.session() as session:
        invitation = members.invite(session, principal, body.email, body.role)
    assert invitation.login_token is not None  # invited without a password
    return InvitationPublic(user=UserPublic.model_validate(invitation.user),
                            login_url=login_url(runtime, invitation.login_token))


@router.patch("/{user_id}", operation_id="change_user_role")
def change_user_role(user_id: str, body: UserRoleChange, principal: CurrentPrincipal,
                     runtime: RuntimeDep) -> UserPublic:
    """Change a user's role; 409 for the last admin of the account."""
    with runtime.db.session() as session:
        return UserPublic.model_validate(
            members.change_role(session, principal, user_id, body.role))


@router.post("/{user_id}/disable", operation_id="disable_user")
def disable_user(user_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> UserPublic:
    """Disable a user: their sessions and tokens stop working at once."""
    with runtime.db.session() as session:
        return UserPublic.model_validate(members.disable(session, principal, user_id))


@router.post("/{user_id}/enable", operation_id="enable_user")
def enable_user(user_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> UserPublic:
    with runtime.db.session() as session:
        return UserPublic.model_validate(members.enable(session, principal, user_id))


@router.delete("/{user_id}", status_code=204, operation_id="remove_user")
def remove_user(user_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> Response:
    """Remove a user and every token of theirs."""
    with runtime.db.session() as session:
        members.remove(session, principal, user_id)
    return Response(status_code=204)

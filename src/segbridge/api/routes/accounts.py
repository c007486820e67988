"""/api/v1/accounts: accounts of this segbridge server, for its instance admin only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from segbridge.accounts import members
from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.api.schemas import (
    AccountCreate,
    AccountPublic,
    ErrorResponse,
    NewAccountPublic,
    UserPublic,
)
from segbridge.runtime import login_url

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 409, 422)}
router = APIRouter(prefix="/accounts", tags=["accounts"], responses=ERRORS)


@router.get("", operation_id="list_accounts")
def list_accounts(principal: CurrentPrincipal, runtime: RuntimeDep) -> list[AccountPublic]:
    with runtime.db.session() as session:
        return [AccountPublic.model_validate(a)
                for a in members.list_accounts(session, principal)]


@router.post("", status_code=201, operation_id="create_account")
def create_account(body: AccountCreate, principal: CurrentPrincipal,
                   runtime: RuntimeDep) -> NewAccountPublic:
    """A new account and its first admin; answers a one-time login link for that admin."""
    with runtime.db.session() as session:
        created = members.create_account_with_admin(session, principal, body.name,
                                                    body.admin_email)
    return NewAccountPublic(account=AccountPublic.model_validate(created.account),
                            admin=UserPublic.model_validate(created.admin),
                            login_url=login_url(runtime, created.login_token))

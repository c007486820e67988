"""/api/v1/tokens: the caller's API tokens (named, optional expiry, last use); list and revoke.

The token's value is answered once, by ``POST``; lists never carry it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BeforeValidator, Field

from segbridge.accounts import credentials
from segbridge.accounts.credentials import ApiTokenCreated, ApiTokenPublic
from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.api.schemas import NOT_BLANK, Strict, whole_number

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid token or session; or the token was revoked or expired."},
    403: {"description": "Only an admin of the account may see other users' tokens."},
}
router = APIRouter(prefix="/tokens", tags=["tokens"], responses=ERRORS)


class ApiTokenCreate(Strict):
    """A new API token for the caller."""

    name: str = Field(min_length=1, max_length=credentials.MAX_NAME_LENGTH, pattern=NOT_BLANK,
                      description="to recognise the token by, e.g. 'nightly import'")
    expires_in_days: Annotated[
        int, Field(ge=1, le=credentials.MAX_EXPIRES_IN_DAYS), BeforeValidator(whole_number),
    ] | None = Field(default=None, description="days until the token stops working; null: never")


@router.post("", status_code=201, operation_id="create_token",
             responses={422: {"description": "A name or expiry out of range."}})
def create_token(body: ApiTokenCreate, principal: CurrentPrincipal,
                 runtime: RuntimeDep) -> ApiTokenCreated:
    """Create an API token; its value is in this answer only, never shown again."""
    with runtime.db.session() as session:
        return credentials.create_api_token(session, principal, body.name, body.expires_in_days)


@router.get("", operation_id="list_tokens")
def list_tokens(principal: CurrentPrincipal, runtime: RuntimeDep,
                all_users: bool = False) -> list[ApiTokenPublic]:
    """The caller's API tokens, newest first; ``all_users=true`` (admins): every user's of
    the account."""
    with runtime.db.session() as session:
        return credentials.list_tokens(session, principal, whole_account=all_users)


@router.delete("/{token_id}", status_code=204, operation_id="revoke_token",
               responses={404: {"description": "No such token in the caller's account."}})
def revoke_token(token_id: str, principal: CurrentPrincipal, runtime: RuntimeDep) -> Response:
    """Revoke an API token: the next request with it answers 401."""
    with runtime.db.session() as session:
        credentials.revoke_token(session, principal, token_id)
    return Response(status_code=204)

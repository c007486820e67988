"""Sign in and out: password login, the one-time login link, and who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import Field

from segbridge.accounts import credentials
from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import SESSION_COOKIE, csrf_token_for
from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.api.schemas import LoginRequest, Me, Strict

router = APIRouter(tags=["auth"])
SESSION_MAX_AGE = int(accounts.SESSION_TTL.total_seconds())


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=SESSION_MAX_AGE, httponly=True, samesite="lax",
        secure=request.url.scheme == "https", path="/")


def client_address(request: Request) -> str | None:
    """The address sign-ins are throttled by (the server runs without proxy headers)."""
    return request.client.host if request.client else None


@router.post("/api/v1/auth/login", operation_id="login", responses={
    401: {"description": "The email or password is wrong."},
    429: {"description": "Too many failed sign-ins for this email or address; wait the "
                         "seconds in Retry-After."}})
def login(body: LoginRequest, request: Request, response: Response,
          runtime: RuntimeDep) -> dict[str, str]:
    token = accounts.login_with_password(runtime.db, body.email, body.password,
                                         address=client_address(request))
    set_session_cookie(response, request, token)
    return {"csrf_token": csrf_token_for(token)}


@router.post("/api/v1/auth/logout", operation_id="logout")
def logout(request: Request, response: Response, principal: CurrentPrincipal,
           runtime: RuntimeDep) -> dict[str, bool]:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with runtime.db.session() as session:
            accounts.revoke_token(session, token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ok": True}


@router.get("/api/v1/me", operation_id="me")
def me(principal: CurrentPrincipal) -> Me:
    return Me(email=principal.email, account_id=principal.account_id, role=principal.role,
              is_admin=principal.is_admin, is_instance_admin=principal.is_instance_admin)


@router.get("/login", include_in_schema=False)
def login_link(token: str, request: Request, runtime: RuntimeDep) -> RedirectResponse:
    with runtime.db.session() as session:
        session_token = accounts.redeem_login_link(session, token)
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, request, session_token)
    return response


class PasswordChange(Strict):
    """A new password for the caller; the current one is needed once a password is set."""

    current_password: str | None = Field(default=None, max_length=1000)
    new_password: str = Field(min_length=accounts.MIN_PASSWORD_LENGTH, max_length=1000)


@router.put("/api/v1/me/password", status_code=204, operation_id="change_password", responses={
    401: {"description": "Not signed in."},
    422: {"description": "The current password did not match, or the new one is too short."},
    429: {"description": "Too many wrong current passwords; wait the seconds in Retry-After."}})
def change_password(body: PasswordChange, request: Request, principal: CurrentPrincipal,
                    runtime: RuntimeDep) -> Response:
    """Set or change your password. Your other browser sessions end; API tokens stay."""
    credentials.change_password(runtime.db, principal, body.current_password,
                                body.new_password, address=client_address(request),
                                keep_session=request.cookies.get(SESSION_COOKIE))
    return Response(status_code=204)

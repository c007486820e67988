"""A user's credentials: named API tokens (optional expiry, last use, revoke) and the password.

An API token is shown once, when it is made; afterwards only its name, dates and id are shown
(the database holds its SHA-256 only). Everyone manages their own tokens; an admin of the
account may also list and revoke those of the account's other users. A token id of another
account answers ``NotFound``, as if it did not exist. Sessions and login links are not API
tokens and are never listed here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from segbridge.accounts import members, roles
from segbridge.accounts import service as accounts
from segbridge.accounts.roles import Permission
from segbridge.accounts.service import Principal
from segbridge.core.clock import isoformat, utcnow
from segbridge.core.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from segbridge.storage.db import Database
from segbridge.storage.models import ApiToken, User

MAX_NAME_LENGTH = 100
MAX_EXPIRES_IN_DAYS = 3650


class ApiTokenPublic(BaseModel):
    """An API token as lists show it: never its value."""

    id: str
    name: str
    user_email: str
    created_at: str
    expires_at: str | None = Field(description="null: never expires")
    last_used_at: str | None = Field(description="to the minute; null: never used")
    expired: bool


class ApiTokenCreated(ApiTokenPublic):
    """A new API token, with its value: shown this once, never again."""

    token: str = Field(description="send as `Authorization: Bearer <token>`; shown only once")


def create_api_token(
    session: Session, principal: Principal, name: str, expires_in_days: int | None, *,
    user_email: str | None = None,
) -> ApiTokenCreated:
    """A new API token for the caller (or, for an admin, a user of the account)."""
    name, lifetime = _valid_name(name), _valid_lifetime(expires_in_days)
    user = _owner(session, principal, user_email)
    value = accounts.issue_token(session, user, kind="api", name=name, ttl=lifetime)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == accounts.hash_token(value)))
    assert row is not None
    return ApiTokenCreated(**_public(row, user).model_dump(), token=value)


def list_tokens(
    session: Session, principal: Principal, *, whole_account: bool = False,
) -> list[ApiTokenPublic]:
    """The caller's API tokens; with ``whole_account`` (admins only) every user's of the
    account. Newest first."""
    query = select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(
        ApiToken.kind == "api")
    if whole_account:
        roles.require(principal, Permission.MANAGE_OTHERS_TOKENS)
        query = query.where(User.account_id == principal.account_id)
    else:
        query = query.where(User.id == principal.user_id)
    rows = session.execute(query.order_by(ApiToken.created_at.desc(), ApiToken.id))
    return [_public(token, user) for token, user in rows]


def revoke_token(session: Session, principal: Principal, token_id: str) -> ApiTokenPublic:
    """Delete an API token: it answers 401 from the next request on."""
    found = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id)
        .where(ApiToken.id == token_id, ApiToken.kind == "api")).first()
    if found is None or found[1].account_id != principal.account_id:
        raise NotFound(f"No API token has the id {token_id}; list them with GET /api/v1/tokens.")
    token, user = found
    if user.id != principal.user_id:
        roles.require(principal, Permission.MANAGE_OTHERS_TOKENS)
    public = _public(token, user)
    session.delete(token)
    return public


def change_password(
    db: Database, principal: Principal, current: str | None, new: str, *,
    keep_session: str | None = None, address: str | None = None,
) -> None:
    """Set the caller's password. With a password already set, ``current`` must match it;
    that check is throttled like a sign-in from ``address`` (a borrowed session cannot guess
    at speed). Every other session of the user ends (``keep_session``: the caller's cookie)."""
    accounts.check_new_password(new)  # before the current one: a typo costs no attempt
    with db.session() as session:
        needs_current = has_password(session, principal)
    if needs_current and accounts.verify_password(
            db, principal.email, current or "", address=address) is None:
        raise ValidationFailed([FieldProblem(
            "current_password", "enter your current password; it did not match")])
    with db.session() as session:
        user = session.get(User, principal.user_id)
        if user is None:
            raise NotFound("Your user no longer exists.")
        accounts.set_password(session, user, new)
        end_sessions(session, user.id, keep=keep_session)


def has_password(session: Session, principal: Principal) -> bool:
    user = session.get(User, principal.user_id)
    return bool(user is not None and user.password_hash)


def end_sessions(session: Session, user_id: str, *, keep: str | None = None) -> None:
    """Sign the user out everywhere (except the session ``keep``)."""
    query = delete(ApiToken).where(ApiToken.user_id == user_id, ApiToken.kind == "session")
    if keep:
        query = query.where(ApiToken.token_hash != accounts.hash_token(keep))
    session.execute(query)


def _owner(session: Session, principal: Principal, user_email: str | None) -> User:
    """Whose token: the caller's, or (admins) another user's of the account."""
    user_id = principal.user_id
    if user_email is not None:
        user_id = members.member_by_email(session, principal, user_email)
        if user_id != principal.user_id:
            roles.require(principal, Permission.MANAGE_OTHERS_TOKENS)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("Your user no longer exists.")
    if user.disabled_at is not None:
        raise Conflict(f"{user.email} is disabled; enable the user first.")
    return user


def _valid_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed([FieldProblem(
            "name", f"enter a name of 1 to {MAX_NAME_LENGTH} characters, e.g. 'nightly import'")])
    return name


def _valid_lifetime(expires_in_days: int | None) -> timedelta | None:
    if expires_in_days is None:
        return None
    if not 1 <= expires_in_days <= MAX_EXPIRES_IN_DAYS:
        raise ValidationFailed([FieldProblem(
            "expires_in_days",
            f"enter a whole number of days from 1 to {MAX_EXPIRES_IN_DAYS}, or none to never "
            "expire")])
    return timedelta(days=expires_in_days)


def _public(token: ApiToken, user: User) -> ApiTokenPublic:
    expires_at = _aware(token.expires_at)
    return ApiTokenPublic(
        id=token.id, name=token.name, user_email=user.email,
        created_at=isoformat(_aware(token.created_at) or utcnow()),
        expires_at=isoformat(expires_at) if expires_at else None,
        last_used_at=isoformat(last) if (last := _aware(token.last_used_at)) else None,
        expired=expires_at is not None and expires_at <= utcnow())


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def reset_password(session: Session, principal: Principal, email: str, new: str) -> str:
    """Set a user's password without the current one (the CLI, on the server): one's own, or
    (admins) a user's of the account. Their browser sessions end. Answers the user's email."""
    user_id = members.member_by_email(session, principal, email)
    if user_id != principal.user_id:
        roles.require(principal, Permission.MANAGE_USERS)
    user = session.get(User, user_id)
    assert user is not None
    accounts.set_password(session, user, new)
    end_sessions(session, user.id)
    return user.email


def count_other_sessions(session: Session, principal: Principal, current: str | None) -> int:
    """How many browser sessions of the caller are signed in besides ``current``."""
    query = select(func.count(ApiToken.id)).where(
        ApiToken.user_id == principal.user_id, ApiToken.kind == "session",
        ApiToken.expires_at > utcnow())
    if current:
        query = query.where(ApiToken.token_hash != accounts.hash_token(current))
    return int(session.scalar(query) or 0)

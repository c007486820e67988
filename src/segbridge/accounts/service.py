"""Accounts, users, passwords (Argon2) and tokens (API tokens, login links, sessions).

Tokens are 256 random bits; only their SHA-256 is stored. A login link is a one-time token
that becomes a browser session.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from segbridge.accounts import throttle
from segbridge.accounts.roles import ROLES, valid_role
from segbridge.core.clock import utcnow
from segbridge.core.errors import (
    Conflict,
    FieldProblem,
    NotAuthenticated,
    NotFound,
    ValidationFailed,
)
from segbridge.core.ids import new_id, new_token
from segbridge.storage.db import Database
from segbridge.storage.models import Account, ApiToken, User

LOGIN_LINK_TTL = timedelta(hours=24)
SESSION_TTL = timedelta(days=7)
MIN_PASSWORD_LENGTH = 10
LAST_USED_PRECISION = timedelta(minutes=1)
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user of an account, through a token, a session or the CLI."""

    user_id: str | None
    account_id: str
    email: str
    role: str  # admin | manage | monitor (accounts/roles.py says what each may do)
    via: str  # token | session | cli | system
    is_instance_admin: bool = False  # may create accounts

    @property
    def is_admin(self) -> bool:
        """An admin (owner) of the account."""
        return self.role == "admin"

    @property
    def actor(self) -> str:
        return f"{self.via}:{self.email}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_account(session: Session, name: str) -> Account:
    account = Account(id=new_id("acc"), name=name.strip() or "Default")
    session.add(account)
    session.flush()
    return account


def create_user(
    session: Session, account_id: str, email: str, password: str | None, *,
    is_admin: bool = False, role: str | None = None,
) -> User:
    """A user of the account with ``role`` (default: admin if ``is_admin``, else manage)."""
    email = _valid_email(email)
    role = _valid_role(role) if role is not None else ("admin" if is_admin else "manage")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed([FieldProblem(
            "password", f"use at least {MIN_PASSWORD_LENGTH} characters")])
    if session.scalar(select(User).where(func.lower(User.email) == email)) is not None:
        raise Conflict(f"A user with the email {email} exists already; choose another email.")
    user = User(
        id=new_id("usr"), account_id=account_id, email=email,
        role=role,
        password_hash=_hasher.hash(password) if password else None,
    )
    session.add(user)
    session.flush()
    return user


def list_users(session: Session, account_id: str) -> list[User]:
    return list(session.scalars(select(User).where(User.account_id == account_id)
                                .order_by(User.email)))


def find_user(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        raise NotFound(f"No user has the email {email}.")
    return user


def set_password(session: Session, user: User, password: str) -> None:
    check_new_password(password)
    user.password_hash = _hasher.hash(password)


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed([FieldProblem(
            "password", f"use at least {MIN_PASSWORD_LENGTH} characters")])


def issue_token(
    session: Session, user: User, *, kind: str, name: str, ttl: timedelta | None = None
) -> str:
    """Create a token and return it; it is shown once and stored only as a hash."""
    token = new_token()
    session.add(ApiToken(
        id=new_id("tok"), user_id=user.id, name=name[:100], token_hash=hash_token(token),
        kind=kind, expires_at=utcnow() + ttl if ttl else None,
    ))
    session.flush()
    return token


def authenticate_token(session: Session, token: str, *, kinds: tuple[str, ...]) -> Principal:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.kind not in kinds or _expired(row.expires_at):
        raise NotAuthenticated("The token is unknown or expired; sign in again or create a token.")
    user = session.get(User, row.user_id)
    if user is None:
        raise NotAuthenticated("The token's user no longer exists.")
    if user.disabled_at is not None:
        raise NotAuthenticated("This user is disabled; ask an admin of the account.")
    _note_use(row)
    return _principal(user, via="token" if row.kind == "api" else "session")


def _note_use(row: ApiToken) -> None:
    """Record when a token was last used: at most one write a minute per token."""
    now = utcnow()
    last = row.last_used_at
    if last is None or now - _aware(last) >= LAST_USED_PRECISION:
        row.last_used_at = now


def redeem_login_link(session: Session, token: str) -> str:
    """Exchange a one-time login token for a new session token."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.kind != "login" or row.used_at is not None or _expired(row.expires_at):
        raise NotAuthenticated(
            "This login link was used already or has expired. Create a new one with "
            "`segbridge users login-link EMAIL`.")
    row.used_at = utcnow()
    user = session.get(User, row.user_id)
    assert user is not None
    return issue_token(session, user, kind="session", name="browser", ttl=SESSION_TTL)


def login_with_password(db: Database, email: str, password: str, *,
                        address: str | None) -> str:
    """Sign in from ``address``; return a new session token.

    Throttled per email and per address (accounts/throttle.py): a blocked attempt raises
    ``TooManyAttempts`` even with the right password. An unknown email, or a user without a
    password, costs the same Argon2 work and gets the same answer as a wrong password.
    """
    user_id = verify_password(db, email, password, address=address)
    if user_id is None:
        raise NotAuthenticated("The email or password is wrong.")
    with db.session() as session:
        user = session.get(User, user_id)
        assert user is not None
        if user.disabled_at is not None:
            raise NotAuthenticated("This user is disabled; ask an admin of the account.")
        throttle.forget_stale(session, utcnow())
        return issue_token(session, user, kind="session", name="browser", ttl=SESSION_TTL)


def verify_password(db: Database, email: str, password: str, *,
                    address: str | None) -> str | None:
    """The id of the user if ``password`` is theirs, else None; throttled like a sign-in
    (``TooManyAttempts`` while blocked). Each step commits on its own: a failure stays
    counted whatever the caller does next."""
    keys = throttle.keys_for(email, address)
    with db.session() as session:
        throttle.begin_attempt(session, keys, utcnow())
    with db.session() as session:
        user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
        if password_matches(user, password):
            assert user is not None
            throttle.succeeded(session, keys)
            return user.id
    with db.session() as session:
        throttle.failed(session, keys, utcnow())
    return None


def password_matches(user: User | None, password: str) -> bool:
    """Argon2 verify; without a user or a password, verify against a dummy hash instead, so
    the time taken does not tell which emails exist."""
    if user is None or not user.password_hash:
        _verify(_dummy_hash(), password)
        return False
    return _verify(user.password_hash, password)


@cache
def _dummy_hash() -> str:
    return _hasher.hash(new_token())


def revoke_token(session: Session, token: str) -> None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is not None:
        session.delete(row)


def principal_for(user: User, via: str) -> Principal:
    return _principal(user, via=via)


def _principal(user: User, *, via: str) -> Principal:
    return Principal(user_id=user.id, account_id=user.account_id, email=user.email,
                     role=user.role, via=via, is_instance_admin=user.is_instance_admin)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _expired(expires_at: datetime | None) -> bool:
    if expires_at is None:
        return False
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=utcnow().tzinfo)
    return expires_at <= utcnow()


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _valid_role(role: str) -> str:
    chosen = valid_role(role)
    if chosen is None:
        raise ValidationFailed([FieldProblem("role", f"choose one of: {', '.join(ROLES)}")])
    return chosen.value


def _valid_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or not domain or " " in email or len(email) > 254:
        raise ValidationFailed(
            [FieldProblem("email", "enter an email address like ana@example.com")])
    return email

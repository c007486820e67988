"""Users of an account, as its admins manage them: invite with a role, list, change a role,
disable, enable and remove. The instance admin creates accounts (each with a first admin).

Every function takes the acting ``Principal`` and checks it (``roles.require``) before it
reads or changes anything; another account's user ids answer ``NotFound``. An account always
keeps one active admin: the last one cannot be demoted, disabled or removed (``Conflict``).
An invitation answers a one-time login token, stored only as its hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from segbridge.accounts.roles import (
    ROLES,
    Permission,
    Role,
    require,
    require_instance_admin,
    valid_role,
)
from segbridge.accounts.service import (
    LOGIN_LINK_TTL,
    Principal,
    create_account,
    create_user,
    issue_token,
)
from segbridge.core.clock import utcnow
from segbridge.core.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from segbridge.storage.models import Account, ApiToken, AuditEntry, User


@dataclass(frozen=True)
class UserPublic:
    id: str
    email: str
    role: str
    disabled: bool
    disabled_at: datetime | None
    is_instance_admin: bool
    has_password: bool
    created_at: datetime | None


@dataclass(frozen=True)
class Invitation:
    """A new user and the one-time login token to hand over (shown once; None when the user
    was given a password instead)."""

    user: UserPublic
    login_token: str | None


@dataclass(frozen=True)
class AccountPublic:
    id: str
    name: str
    users: int
    created_at: datetime | None


@dataclass(frozen=True)
class NewAccount:
    account: AccountPublic
    admin: UserPublic
    login_token: str


# ---- users of the principal's account ------------------------------------------------------

def list_members(session: Session, principal: Principal) -> list[UserPublic]:
    require(principal, Permission.MANAGE_USERS)
    rows = session.scalars(select(User).where(User.account_id == principal.account_id)
                           .order_by(User.email))
    return [user_public(row) for row in rows]


def invite(session: Session, principal: Principal, email: str, role: str, *,
           account_id: str | None = None, password: str | None = None) -> Invitation:
    """A new user of the account (of ``account_id`` for the instance admin) with a login link,
    or with ``password`` (from the CLI)."""
    require(principal, Permission.MANAGE_USERS)
    target = principal.account_id
    if account_id is not None and account_id != principal.account_id:
        require_instance_admin(principal.is_instance_admin)
        if session.get(Account, account_id) is None:
            raise NotFound(f"No account with id '{account_id}'.")
        target = account_id
    user = create_user(session, target, email, password, role=role)
    token = None if password else issue_token(session, user, kind="login", name="invitation",
                                              ttl=LOGIN_LINK_TTL)
    _audit(session, principal, target, "invite", user, [f"role={user.role}"])
    return Invitation(user_public(user), token)


def change_role(session: Session, principal: Principal, user_id: str, role: str) -> UserPublic:
    require(principal, Permission.MANAGE_USERS)
    user = _member(session, principal, user_id)
    new_role = _role(role)
    if user.role == new_role:
        return user_public(user)
    if new_role != Role.ADMIN:
        _keep_an_admin(session, user, "demoted")
        _keep_instance_admin(user, "demoted")  # (as for disable and remove: a monitor who
        # could still create accounts, found by a tester)
    old, user.role = user.role, new_role.value
    _audit(session, principal, user.account_id, "change_role", user, [f"role:{old}->{new_role}"])
    return user_public(user)


def disable(session: Session, principal: Principal, user_id: str) -> UserPublic:
    """Disable a user: their sessions and tokens stop working at once (``authenticate_token``
    refuses a disabled user); unused login links are deleted."""
    require(principal, Permission.MANAGE_USERS)
    user = _member(session, principal, user_id)
    if user.disabled_at is None:
        _keep_an_admin(session, user, "disabled")
        _keep_instance_admin(user, "disabled")
        user.disabled_at = utcnow()
        session.execute(delete(ApiToken).where(ApiToken.user_id == user.id,
                                               ApiToken.kind == "login"))
        _audit(session, principal, user.account_id, "disable", user, [])
    return user_public(user)


def enable(session: Session, principal: Principal, user_id: str) -> UserPublic:
    """Enable a user again: their API tokens work again; browser sessions from before the
    user was disabled do not (they sign in again)."""
    require(principal, Permission.MANAGE_USERS)
    user = _member(session, principal, user_id)
    if user.disabled_at is not None:
        user.disabled_at = None
        session.execute(delete(ApiToken).where(ApiToken.user_id == user.id,
                                               ApiToken.kind == "session"))
        _audit(session, principal, user.account_id, "enable", user, [])
    return user_public(user)


def remove(session: Session, principal: Principal, user_id: str) -> None:
    """Remove a user and every token of theirs (API tokens, sessions, login links)."""
    require(principal, Permission.MANAGE_USERS)
    user = _member(session, principal, user_id)
    _keep_an_admin(session, user, "removed")
    _keep_instance_admin(user, "removed")
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    _audit(session, principal, user.account_id, "remove", user, [f"email={user.email}"])
    session.delete(user)
    session.flush()


def member_by_email(session: Session, principal: Principal, email: str) -> str:
    """The id of the account's user with this email (for the CLI, which names users so)."""
    require(principal, Permission.VIEW)
    user_id = session.scalar(select(User.id).where(
        User.account_id == principal.account_id,
        func.lower(User.email) == email.strip().lower()))
    if user_id is None:
        raise NotFound(f"No user with the email {email} in your account.")
    return user_id


# ---- accounts (the instance admin) -----------------------------------------------------------

def create_account_with_admin(session: Session, principal: Principal | None, name: str,
                              admin_email: str) -> NewAccount:
    """A new account and its first admin, with a one-time login token for that admin.

    ``principal`` None only when the database has no account yet (the first start by CLI):
    that first admin is then the instance admin.
    """
    first = principal is None
    if principal is not None:
        require_instance_admin(principal.is_instance_admin)
    elif session.scalar(select(Account.id).limit(1)) is not None:
        require_instance_admin(False)
    clean = (name or "").strip()
    if not clean or len(clean) > 100:
        raise ValidationFailed([FieldProblem("name", "enter a name of 1 to 100 characters")])
    account = create_account(session, clean)
    admin = create_user(session, account.id, admin_email, None, role=Role.ADMIN.value)
    admin.is_instance_admin = first
    token = issue_token(session, admin, kind="login", name="invitation", ttl=LOGIN_LINK_TTL)
    actor = principal.actor if principal else "cli:first start"
    session.add(AuditEntry(account_id=account.id, actor=actor, action="create",
                           entity="account", entity_id=account.id, fields=[f"name={clean}"]))
    return NewAccount(AccountPublic(account.id, account.name, 1, account.created_at),
                      user_public(admin), token)


def first_user(session: Session, email: str, password: str | None) -> UserPublic:
    """On an empty database: the Default account and its admin, the instance admin."""
    if session.scalar(select(Account.id).limit(1)) is not None:
        raise Conflict("segbridge has an account already; act as one of its admins instead.")
    account = create_account(session, "Default")
    user = create_user(session, account.id, email, password, role=Role.ADMIN.value)
    user.is_instance_admin = True
    return user_public(user)


def issue_for_member(session: Session, principal: Principal, email: str, *, kind: str,
                     name: str) -> str:
    """An API token or a login link for a user of the account: one's own, or (admins) any."""
    user_id = member_by_email(session, principal, email)
    if user_id != principal.user_id:
        require(principal, Permission.MANAGE_OTHERS_TOKENS)
    user = session.get(User, user_id)
    assert user is not None
    if user.disabled_at is not None:
        raise Conflict(f"{user.email} is disabled; enable the user first.")
    ttl = LOGIN_LINK_TTL if kind == "login" else None
    return issue_token(session, user, kind=kind, name=name, ttl=ttl)


def list_accounts(session: Session, principal: Principal) -> list[AccountPublic]:
    require_instance_admin(principal.is_instance_admin)
    counts: dict[str, int] = {
        account_id: count for account_id, count in session.execute(
            select(User.account_id, func.count(User.id)).group_by(User.account_id))}
    rows = session.scalars(select(Account).order_by(Account.created_at, Account.name))
    return [AccountPublic(a.id, a.name, counts.get(a.id, 0), a.created_at) for a in rows]


# ---- helpers -------------------------------------------------------------------------------

def user_public(user: User) -> UserPublic:
    return UserPublic(id=user.id, email=user.email, role=user.role,
                      disabled=user.disabled_at is not None, disabled_at=user.disabled_at,
                      is_instance_admin=user.is_instance_admin,
                      has_password=bool(user.password_hash), created_at=user.created_at)


def _member(session: Session, principal: Principal, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None or user.account_id != principal.account_id:
        raise NotFound(f"No user with id '{user_id}' in your account.")
    return user


def _role(role: str) -> Role:
    chosen = valid_role(role or "")
    if chosen is None:
        raise ValidationFailed([FieldProblem("role", f"choose one of: {', '.join(ROLES)}")])
    return chosen


def _keep_instance_admin(user: User, change: str) -> None:
    if user.is_instance_admin:
        raise Conflict(f"{user.email} is the instance admin (who creates accounts) and cannot "
                       f"be {change}.", details={"reason": "instance_admin"})


def _keep_an_admin(session: Session, user: User, change: str) -> None:
    """Refuse a change that would leave the account without an active admin."""
    if user.role != Role.ADMIN or user.disabled_at is not None:
        return
    others = session.scalar(select(func.count(User.id)).where(
        User.account_id == user.account_id, User.role == Role.ADMIN.value,
        User.disabled_at.is_(None), User.id != user.id))
    if not others:
        raise Conflict(
            f"{user.email} is the last admin of the account and cannot be {change}; make "
            "another user admin first.", details={"reason": "last_admin"})


def _audit(session: Session, principal: Principal, account_id: str, action: str, user: User,
           fields: list[str]) -> None:
    session.add(AuditEntry(account_id=account_id, actor=principal.actor, action=action,
                           entity="user", entity_id=user.id, fields=fields))

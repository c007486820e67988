"""Roles of an account and what each may do; ``require`` is the one check every service calls.

    admin    (owner)  everything: users and their roles, other users' tokens, keys, faults
    manage            build and run: connections (create, edit, delete, test), integrations,
                      flows, uploads, preview, runs (start, cancel), record errors (retry,
                      resolve), and every record's data
    monitor           read connections, flows, runs and record errors - without the records'
                      data; changes nothing, previews nothing

Creating accounts is not a role of an account: it belongs to the instance admin
(``Principal.is_instance_admin``, see ``require_instance_admin``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from segbridge.core.errors import PermissionDenied


class Role(StrEnum):
    ADMIN = "admin"
    MANAGE = "manage"
    MONITOR = "monitor"


ROLES: tuple[str, ...] = tuple(role.value for role in Role)
_RANK = {Role.MONITOR: 0, Role.MANAGE: 1, Role.ADMIN: 2}


class Permission(StrEnum):
    """What a caller wants to do, named as the product names it."""

    VIEW = "view connections, flows, runs and record errors"
    VIEW_RECORD_DATA = "see the data of records"
    PREVIEW = "preview flows"
    EDIT_CONNECTIONS = "create, edit or delete connections"
    TEST_CONNECTIONS = "test connections"
    EDIT_FLOWS = "create, edit or delete integrations and flows"
    UPLOAD = "upload files"
    RUN_FLOWS = "run or cancel flows"
    HANDLE_ERRORS = "retry or resolve record errors"
    EDIT_ALERTS = "change alert settings or send a test alert"
    MANAGE_USERS = "invite users, change roles, disable or remove users"
    MANAGE_OTHERS_TOKENS = "manage other users' API tokens"
    MANAGE_KEYS = "rotate the master key"
    SET_SANDBOX_FAULTS = "set faults of the local Segment"


LEAST_ROLE: dict[Permission, Role] = {
    Permission.VIEW: Role.MONITOR,
    Permission.VIEW_RECORD_DATA: Role.MANAGE,
    Permission.PREVIEW: Role.MANAGE,
    Permission.EDIT_CONNECTIONS: Role.MANAGE,
    Permission.TEST_CONNECTIONS: Role.MANAGE,
    Permission.EDIT_FLOWS: Role.MANAGE,
    Permission.UPLOAD: Role.MANAGE,
    Permission.RUN_FLOWS: Role.MANAGE,
    Permission.HANDLE_ERRORS: Role.MANAGE,
    Permission.EDIT_ALERTS: Role.MANAGE,
    Permission.MANAGE_USERS: Role.ADMIN,
    Permission.MANAGE_OTHERS_TOKENS: Role.ADMIN,
    Permission.MANAGE_KEYS: Role.ADMIN,
    Permission.SET_SANDBOX_FAULTS: Role.ADMIN,
}
"""The least role that may do each thing; every role above it may too."""


class HasRole(Protocol):
    @property
    def role(self) -> str: ...


def allows(role: str, permission: Permission) -> bool:
    """May a user with this role do this? (An unknown role may do nothing.)"""
    try:
        rank = _RANK[Role(role)]
    except ValueError:
        return False
    return rank >= _RANK[LEAST_ROLE[permission]]


def may(caller: HasRole, permission: Permission) -> bool:
    return allows(caller.role, permission)


def require(caller: HasRole, permission: Permission) -> None:
    """Raise ``PermissionDenied`` (403) naming the role needed, unless the caller may."""
    if may(caller, permission):
        return
    raise PermissionDenied(
        f"Your role ({caller.role}) may not {permission.value}; this needs the "
        f"{_roles_from(LEAST_ROLE[permission])} role. Ask an admin of the account.",
        details={"role": caller.role, "needs": LEAST_ROLE[permission].value,
                 "permission": permission.name.lower()})


def require_instance_admin(is_instance_admin: bool) -> None:
    if not is_instance_admin:
        raise PermissionDenied(
            "Only the instance admin (the first admin of this segbridge server) may create or "
            "list accounts.", details={"needs": "instance_admin"})


def valid_role(role: str) -> Role | None:
    try:
        return Role(role.strip().lower())
    except ValueError:
        return None


def _roles_from(least: Role) -> str:
    names = [role.value for role in reversed(Role) if _RANK[role] >= _RANK[least]]
    return " or ".join(names)

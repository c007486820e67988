"""The public form of a connection: never a secret, only ``has_<secret>: true``; and of its
audit entries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from segbridge.apps.base import Registry
from segbridge.connections.model import DEFAULT_CONCURRENCY
from segbridge.connections.secret_store import secret_fields
from segbridge.core.clock import isoformat
from segbridge.storage.models import AuditEntry, Connection


class AuditPublic(BaseModel):
    """Who changed what, when (``fields``: the names of the settings changed, never a value)."""

    at: str | None
    actor: str
    action: str
    entity: str
    entity_id: str
    fields: list[str]


def public_audit(entry: AuditEntry) -> AuditPublic:
    return AuditPublic(at=iso(entry.at), actor=entry.actor, action=entry.action,
                       entity=entry.entity, entity_id=entry.entity_id, fields=entry.fields)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return isoformat(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def root_lender(session: Session, connection: Connection) -> Connection:
    """Follow the borrowing chain to the connection whose level applies."""
    seen = {connection.id}
    current = connection
    while current.borrow_concurrency_from:
        lender = session.get(Connection, current.borrow_concurrency_from)
        if lender is None or lender.id in seen:
            break
        seen.add(lender.id)
        current = lender
    return current


def effective_concurrency(session: Session, connection: Connection) -> dict[str, Any]:
    root = root_lender(session, connection)
    level = root.concurrency_level or DEFAULT_CONCURRENCY
    if root.id == connection.id:
        return {"level": level, "borrowing": False, "lender_id": None, "lender_name": None,
                "note": "" if connection.concurrency_level else "default (25)"}
    own = connection.concurrency_level
    note = f"borrows from '{root.name}' ({level})"
    if own is not None:
        note += f"; its own level {own} is ignored while borrowing"
    return {"level": level, "borrowing": True, "lender_id": root.id, "lender_name": root.name,
            "note": note}


def borrowers(session: Session, connection_id: str) -> list[Connection]:
    return list(session.scalars(
        select(Connection).where(Connection.borrow_concurrency_from == connection_id)
        .order_by(Connection.name)))


def public_connection(
    session: Session, registry: Registry, connection: Connection
) -> dict[str, Any]:
    application = registry.get(connection.application)
    settings: dict[str, Any] = dict(connection.settings)
    stored_secrets = secret_fields(session, connection.id)
    for spec in application.settings if application else ():
        if spec.secret:
            settings[f"has_{spec.name}"] = spec.name in stored_secrets
    return {
        "id": connection.id,
        "name": connection.name,
        "application": connection.application,
        "settings": settings,
        "concurrency_level": connection.concurrency_level,
        "borrow_concurrency_from": connection.borrow_concurrency_from,
        "effective_concurrency": effective_concurrency(session, connection),
        "status": connection.status,
        "last_test": _last_test(connection),
        "used_by": {"borrowers": [{"id": c.id, "name": c.name}
                                  for c in borrowers(session, connection.id)]},
        "created_at": iso(connection.created_at),
        "updated_at": iso(connection.updated_at),
    }


def _last_test(connection: Connection) -> dict[str, Any] | None:
    if connection.last_test_at is None:
        return None
    return {"at": iso(connection.last_test_at), "ok": connection.last_test_ok,
            **(connection.last_test or {})}

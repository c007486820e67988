"""The public form of a connection: never a secret, only ``has_<secret>: true``; and of its
audit entries.

ConnectionService answers these models; the API declares them as its response models, the
pages read their attributes and the CLI prints ``as_json()``. Their JSON is the one the API
has always answered: the same keys, in the same order, with the same values and nulls.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from segbridge.apps.base import Registry
from segbridge.connections.model import DEFAULT_CONCURRENCY
from segbridge.connections.secret_store import secret_fields
from segbridge.core.clock import isoformat
from segbridge.core.public import PublicForm
from segbridge.storage.models import AuditEntry, Connection, Flow, FlowConnection

SettingValue = str | bool | None
"""A plain setting's value, or ``has_<secret>``: whether that secret is stored."""


class EffectiveConcurrency(PublicForm):
    """The concurrency level that applies: its own, the default, or its lender's."""

    level: int
    borrowing: bool
    lender_id: str | None
    lender_name: str | None
    note: str


class EffectiveRateLimit(PublicForm):
    """The rate limit that applies: the connection's own, or its lender's (a borrower shares
    its lender's budget); None: no limit of that kind."""

    requests_per_second: float | None
    events_per_second: float | None
    lender_id: str | None = Field(description="the lender whose limit applies, if borrowing")


class ConnectionRef(PublicForm):
    id: str
    name: str


class ConnectionUsage(PublicForm):
    """What depends on the connection: the connections that borrow its concurrency, and
    the flows that export or import through it."""

    borrowers: list[ConnectionRef]
    flows: list[ConnectionRef] = Field(description="the flows that use the connection")


class LastTest(PublicForm):
    """The last Test connection: when, whether it passed, and the test's result as it was
    answered then (endpoint, status, latency_ms, message_id, cause, message, checks,
    debugger_hint), kept as stored."""

    model_config = ConfigDict(extra="allow")

    at: str | None
    ok: bool | None


class ConnectionPublic(PublicForm):
    """A connection as the API shows it: ``settings.has_write_key`` instead of the key."""

    id: str
    name: str
    application: str
    settings: dict[str, SettingValue]
    concurrency_level: int | None
    borrow_concurrency_from: str | None
    effective_concurrency: EffectiveConcurrency
    requests_per_second: float | None = Field(
        description="the rate limit in requests per second; null: none")
    events_per_second: float | None = Field(
        description="the rate limit in events per second; null: none")
    effective_rate_limit: EffectiveRateLimit
    status: str = Field(description="online or offline")
    last_test: LastTest | None
    used_by: ConnectionUsage
    created_at: str | None
    updated_at: str | None


class AuditPublic(PublicForm):
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


def effective_concurrency(session: Session, connection: Connection) -> EffectiveConcurrency:
    root = root_lender(session, connection)
    level = root.concurrency_level or DEFAULT_CONCURRENCY
    if root.id == connection.id:
        return EffectiveConcurrency(
            level=level, borrowing=False, lender_id=None, lender_name=None,
            note="" if connection.concurrency_level else "default (25)")
    own = connection.concurrency_level
    note = f"borrows from '{root.name}' ({level})"
    if own is not None:
        note += f"; its own level {own} is ignored while borrowing"
    return EffectiveConcurrency(level=level, borrowing=True, lender_id=root.id,
                                lender_name=root.name, note=note)


def effective_rate_limit(session: Session, connection: Connection) -> EffectiveRateLimit:
    root = root_lender(session, connection)
    return EffectiveRateLimit(requests_per_second=root.requests_per_second,
                              events_per_second=root.events_per_second,
                              lender_id=None if root.id == connection.id else root.id)


def borrowers(session: Session, connection_id: str) -> list[Connection]:
    return list(session.scalars(
        select(Connection).where(Connection.borrow_concurrency_from == connection_id)
        .order_by(Connection.name)))


def flows_through(session: Session, connection_id: str) -> list[tuple[str, str]]:
    """The flows that use the connection (id, name), by name."""
    rows = session.execute(select(Flow.id, Flow.name).join(
        FlowConnection, FlowConnection.flow_id == Flow.id)
        .where(FlowConnection.connection_id == connection_id).order_by(Flow.name_key))
    return [(flow_id, name) for flow_id, name in rows]


def public_connection(
    session: Session, registry: Registry, connection: Connection
) -> ConnectionPublic:
    return ConnectionPublic(
        id=connection.id,
        name=connection.name,
        application=connection.application,
        settings=_public_settings(session, registry, connection),
        concurrency_level=connection.concurrency_level,
        borrow_concurrency_from=connection.borrow_concurrency_from,
        effective_concurrency=effective_concurrency(session, connection),
        requests_per_second=connection.requests_per_second,
        events_per_second=connection.events_per_second,
        effective_rate_limit=effective_rate_limit(session, connection),
        status=connection.status,
        last_test=_last_test(connection),
        used_by=ConnectionUsage(
            borrowers=[ConnectionRef(id=c.id, name=c.name)
                       for c in borrowers(session, connection.id)],
            flows=[ConnectionRef(id=flow_id, name=name)
                   for flow_id, name in flows_through(session, connection.id)]),
        created_at=iso(connection.created_at),
        updated_at=iso(connection.updated_at),
    )


def _public_settings(
    session: Session, registry: Registry, connection: Connection
) -> dict[str, SettingValue]:
    """The stored plain values, then ``has_<secret>`` for each secret setting."""
    application = registry.get(connection.application)
    settings: dict[str, SettingValue] = dict(connection.settings)
    stored_secrets = secret_fields(session, connection.id)
    for spec in application.settings if application else ():
        if spec.secret:
            settings[f"has_{spec.name}"] = spec.name in stored_secrets
    return settings


def _last_test(connection: Connection) -> LastTest | None:
    if connection.last_test_at is None:
        return None
    return LastTest.model_validate({"at": iso(connection.last_test_at),
                                    "ok": connection.last_test_ok,
                                    **(connection.last_test or {})})

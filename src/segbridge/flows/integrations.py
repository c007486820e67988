"""Integrations: named groups of flows, with the connections registered to them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segbridge.accounts.roles import Permission, require
from segbridge.accounts.service import Principal
from segbridge.connections.model import name_key
from segbridge.core.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from segbridge.core.ids import new_id
from segbridge.flows.views import IntegrationPublic, NamedRef
from segbridge.storage.db import Database
from segbridge.storage.models import Connection, Flow, Integration, IntegrationConnection


class IntegrationService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, principal: Principal, name: str) -> IntegrationPublic:
        require(principal, Permission.EDIT_FLOWS)
        with self.db.session() as session:
            clean = _valid_name(session, principal.account_id, name, own_id=None)
            integration = Integration(id=new_id("int"), account_id=principal.account_id,
                                      name=clean, name_key=name_key(clean))
            session.add(integration)
            _flush(session)
            return public_integration(session, integration)

    def list_all(self, principal: Principal) -> list[IntegrationPublic]:
        with self.db.session() as session:
            rows = session.scalars(select(Integration).where(
                Integration.account_id == principal.account_id).order_by(Integration.name_key))
            return [public_integration(session, row) for row in rows]

    def get(self, principal: Principal, integration_id: str) -> IntegrationPublic:
        with self.db.session() as session:
            return public_integration(session, owned(session, principal, integration_id))

    def rename(self, principal: Principal, integration_id: str, name: str) -> IntegrationPublic:
        require(principal, Permission.EDIT_FLOWS)
        with self.db.session() as session:
            integration = owned(session, principal, integration_id)
            clean = _valid_name(session, principal.account_id, name, own_id=integration.id)
            integration.name, integration.name_key = clean, name_key(clean)
            _flush(session)
            return public_integration(session, integration)

    def delete(self, principal: Principal, integration_id: str) -> None:
        require(principal, Permission.EDIT_FLOWS)
        with self.db.session() as session:
            integration = owned(session, principal, integration_id)
            flows = list(session.scalars(select(Flow.name).where(
                Flow.integration_id == integration.id)))
            if flows:
                raise Conflict(f"The integration '{integration.name}' still has flows: "
                               f"{', '.join(flows)}. Delete or move them first.",
                               details={"flows": flows})
            session.delete(integration)

    def register(self, principal: Principal, integration_id: str,
                 connection_id: str) -> IntegrationPublic:
        """Register a saved connection with an integration (it is available to its flows)."""
        require(principal, Permission.EDIT_FLOWS)
        with self.db.session() as session:
            integration = owned(session, principal, integration_id)
            connection = session.get(Connection, connection_id)
            if connection is None or connection.account_id != principal.account_id:
                raise NotFound(f"No connection with id '{connection_id}' in your account.")
            if session.get(IntegrationConnection, (integration.id, connection.id)) is None:
                session.add(IntegrationConnection(integration_id=integration.id,
                                                  connection_id=connection.id))
            session.flush()
            return public_integration(session, integration)

    def unregister(self, principal: Principal, integration_id: str, connection_id: str) -> None:
        require(principal, Permission.EDIT_FLOWS)
        with self.db.session() as session:
            integration = owned(session, principal, integration_id)
            link = session.get(IntegrationConnection, (integration.id, connection_id))
            if link is not None:
                session.delete(link)


def owned(session: Session, principal: Principal, integration_id: str) -> Integration:
    integration = session.get(Integration, integration_id)
    if integration is None or integration.account_id != principal.account_id:
        raise NotFound(f"No integration with id '{integration_id}' in your account.")
    return integration


def find_integration(session: Session, account_id: str, name_or_id: str) -> Integration | None:
    by_id = session.get(Integration, name_or_id)
    if by_id is not None and by_id.account_id == account_id:
        return by_id
    return session.scalar(select(Integration).where(
        Integration.account_id == account_id, Integration.name_key == name_key(name_or_id)))


def public_integration(session: Session, integration: Integration) -> IntegrationPublic:
    connections = session.execute(
        select(Connection.id, Connection.name).join(
            IntegrationConnection, IntegrationConnection.connection_id == Connection.id)
        .where(IntegrationConnection.integration_id == integration.id)
        .order_by(Connection.name_key))
    flows = session.execute(select(Flow.id, Flow.name).where(
        Flow.integration_id == integration.id).order_by(Flow.name_key))
    return IntegrationPublic(
        id=integration.id, name=integration.name,
        connections=[NamedRef(id=i, name=n) for i, n in connections],
        flows=[NamedRef(id=i, name=n) for i, n in flows])


def _valid_name(session: Session, account_id: str, name: str, *, own_id: str | None) -> str:
    clean = (name or "").strip()
    if not clean or len(clean) > 100:
        raise ValidationFailed([FieldProblem("name", "enter a name of 1 to 100 characters")])
    other = session.scalar(select(Integration.id).where(
        Integration.account_id == account_id, Integration.name_key == name_key(clean)))
    if other is not None and other != own_id:
        raise Conflict(f"An integration named '{clean}' exists already; choose another name.",
                       details={"field": "name"})
    return clean


def _flush(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("This integration name was just taken; choose another name.",
                       details={"field": "name"}) from None

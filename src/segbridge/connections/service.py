"""Connections: create, test, save (= test, then commit), update, delete, re-test offline.

All behaviour of the Create connection pane lives here; the API, the CLI and the web pages
call these functions and render what they return.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segbridge.accounts.roles import Permission, require
from segbridge.accounts.service import Principal
from segbridge.apps.base import Application, ConnectionConfig, PingResult, Registry
from segbridge.connections import validation
from segbridge.connections.model import ConnectionDraft, name_key
from segbridge.connections.secret_store import load_secrets, store_secret
from segbridge.connections.validation import RATE_FIELDS
from segbridge.connections.views import (
    AuditPublic,
    ConnectionPublic,
    borrowers,
    public_audit,
    public_connection,
)
from segbridge.core.access import AccessPolicy
from segbridge.core.clock import utcnow
from segbridge.core.errors import (
    Conflict,
    ConnectionTestFailed,
    FieldProblem,
    NotAllowedHere,
    NotFound,
    ValidationFailed,
)
from segbridge.core.ids import new_id
from segbridge.core.secrets import Secret
from segbridge.core.vault import Vault
from segbridge.storage.db import Database
from segbridge.storage.models import AuditEntry, Connection

log = logging.getLogger(__name__)

UsageCheck = Callable[[Session, Connection], list[str]]
"""Names what uses a connection (e.g. flows), so deleting it can be refused."""


class ConnectionService:
    def __init__(
        self, db: Database, vault: Vault, registry: Registry, *, timeout: float,
        usage_checks: tuple[UsageCheck, ...] = (), access: AccessPolicy,
    ) -> None:
        self.access = access
        self.db = db
        self.vault = vault
        self.registry = registry
        self.timeout = timeout
        self.usage_checks = usage_checks

    # ---- reading -------------------------------------------------------------------------

    def list_all(self, principal: Principal) -> list[ConnectionPublic]:
        with self.db.session() as session:
            rows = session.scalars(select(Connection)
                                   .where(Connection.account_id == principal.account_id)
                                   .order_by(Connection.name_key))
            return [public_connection(session, self.registry, row) for row in rows]

    def get(self, principal: Principal, connection_id: str) -> ConnectionPublic:
        with self.db.session() as session:
            return public_connection(session, self.registry,
                                     _owned(session, principal, connection_id))

    def audit(self, principal: Principal, connection_id: str | None = None) -> list[AuditPublic]:
        with self.db.session() as session:
            query = select(AuditEntry).where(AuditEntry.account_id == principal.account_id)
            if connection_id:
                _owned(session, principal, connection_id)
                query = query.where(AuditEntry.entity_id == connection_id)
            rows = session.scalars(query.order_by(AuditEntry.id.desc()).limit(500))
            return [public_audit(row) for row in rows]

    # ---- testing -------------------------------------------------------------------------

    def test_draft(self, principal: Principal, draft: ConnectionDraft) -> PingResult:
        """Test connection for a configuration not saved yet: validate settings, then ping."""
        require(principal, Permission.TEST_CONNECTIONS)
        application, problems = validation.check_application(self.registry, draft.application)
        if application is None:
            raise ValidationFailed(problems)
        values, secrets, problems = validation.check_settings(application, draft.settings)
        if problems:
            raise ValidationFailed(problems)
        return self._ping(application, ConnectionConfig(values, secrets))

    def test_saved(self, principal: Principal, connection_id: str) -> PingResult:
        """Test a saved connection with its stored secrets; record the result and status."""
        require(principal, Permission.TEST_CONNECTIONS)
        with self.db.session() as session:
            connection = _owned(session, principal, connection_id)
            application, config = self._config(session, connection)
        result = self._ping(application, config)
        with self.db.session() as session:
            connection = _owned(session, principal, connection_id)
            _record_test(connection, result)
            _audit(session, principal.account_id, principal.actor, "test", connection, [])
        return result

    # ---- saving --------------------------------------------------------------------------

    def create(
        self, principal: Principal, draft: ConnectionDraft,
    ) -> tuple[ConnectionPublic, PingResult]:
        """Save: validate everything, test, and commit only if the test passed."""
        require(principal, Permission.EDIT_CONNECTIONS)
        with self.db.session() as session:
            valid = self._validate(session, principal, draft, existing=None)
        result = self._ping_or_refuse(valid)
        with self.db.session() as session:
            connection = Connection(id=new_id("con"), account_id=principal.account_id,
                                    application=valid.application.key)
            _apply(connection, valid)
            session.add(connection)
            self._commit_secrets(session, connection, valid)
            _record_test(connection, result)
            _audit(session, principal.account_id, principal.actor, "create", connection,
                   _all_fields(valid))
            self._flush_unique(session)
            log.info("connection %s (%s) created by %s", connection.id, connection.application,
                     principal.actor)
            return public_connection(session, self.registry, connection), result

    def update(
        self, principal: Principal, connection_id: str, draft: ConnectionDraft,
    ) -> tuple[ConnectionPublic, PingResult]:
        """Save an edit: the application stays, the write key must be entered again."""
        require(principal, Permission.EDIT_CONNECTIONS)
        with self.db.session() as session:
            existing = _owned(session, principal, connection_id)
            valid = self._validate(session, principal, draft, existing=existing)
        result = self._ping_or_refuse(valid)
        with self.db.session() as session:
            connection = _owned(session, principal, connection_id)
            changed = _changed_fields(connection, valid)
            _apply(connection, valid)
            connection.updated_at = utcnow()
            self._commit_secrets(session, connection, valid)
            _record_test(connection, result)
            _audit(session, principal.account_id, principal.actor, "update", connection, changed)
            self._flush_unique(session)
            log.info("connection %s updated by %s: %s", connection.id, principal.actor,
                     ", ".join(changed) or "nothing changed")
            return public_connection(session, self.registry, connection), result

    def delete(self, principal: Principal, connection_id: str) -> None:
        require(principal, Permission.EDIT_CONNECTIONS)
        with self.db.session() as session:
            connection = _owned(session, principal, connection_id)
            users = [f"connection '{c.name}' borrows its concurrency"
                     for c in borrowers(session, connection.id)]
            for check in self.usage_checks:
                users.extend(check(session, connection))
            if users:
                raise Conflict(
                    f"'{connection.name}' is in use and was not deleted: {'; '.join(users)}. "
                    "Change those first.", details={"used_by": users})
            _audit(session, principal.account_id, principal.actor, "delete", connection, [])
            session.delete(connection)

    # ---- background ----------------------------------------------------------------------

    def retest_offline(self) -> int:
        """Ping every offline connection of every account; return how many came back online."""
        with self.db.session() as session:
            ids = list(session.scalars(select(Connection.id).where(Connection.status == "offline")))
        back = 0
        for connection_id in ids:
            back += self._retest_one(connection_id)
        return back

    def _retest_one(self, connection_id: str) -> int:
        with self.db.session() as session:
            connection = session.get(Connection, connection_id)
            if connection is None:
                return 0
            application, config = self._config(session, connection)
        result = self._ping(application, config)
        with self.db.session() as session:
            connection = session.get(Connection, connection_id)
            if connection is None:
                return 0
            _record_test(connection, result)
            _audit(session, connection.account_id, "system:retest", "test", connection, [])
        log.info("re-tested offline connection %s: %s", connection_id,
                 "online" if result.ok else result.cause)
        return int(result.ok)

    # ---- helpers -------------------------------------------------------------------------

    def _validate(
        self, session: Session, principal: Principal, draft: ConnectionDraft,
        *, existing: Connection | None,
    ) -> validation.ValidDraft:
        own_id = existing.id if existing else None
        problems = validation.check_name(session, principal.account_id, draft.name,
                                         own_id=own_id)
        application, app_problems = self._check_application(draft, existing)
        problems += app_problems
        values: dict[str, str | None] = {}
        secrets: dict[str, Secret] = {}
        if application is not None:
            values, secrets, setting_problems = validation.check_settings(
                application, draft.settings)
            problems += setting_problems
        problems += validation.check_concurrency(draft.concurrency_level)
        problems += validation.check_rates(draft)
        lender, lender_problems = validation.check_lender(
            session, principal.account_id, draft, application, own_id=own_id)
        problems += lender_problems
        if problems or application is None:
            raise ValidationFailed(problems)
        return validation.ValidDraft(
            name=draft.name.strip(), application=application, values=values, secrets=secrets,
            concurrency_level=draft.concurrency_level, lender=lender,
            requests_per_second=_rate(draft.requests_per_second),
            events_per_second=_rate(draft.events_per_second))

    def _check_application(
        self, draft: ConnectionDraft, existing: Connection | None
    ) -> tuple[Application | None, list[FieldProblem]]:
        if existing is None:
            return validation.check_application(self.registry, draft.application)
        if draft.application and draft.application != existing.application:
            return None, [FieldProblem(
                "application", f"the application of a connection cannot be changed (it is "
                               f"{existing.application}); create a new connection instead")]
        return validation.check_application(self.registry, existing.application)

    def _ping_or_refuse(self, valid: validation.ValidDraft) -> PingResult:
        result = self._ping(valid.application, ConnectionConfig(valid.values, valid.secrets))
        if not result.ok:
            raise ConnectionTestFailed(
                f"The connection was not saved because its test failed: {result.message}",
                details=result.public())
        return result

    def _ping(self, application: Application, config: ConnectionConfig) -> PingResult:
        """The application's ping, once the access policy allows what it would reach."""
        try:
            self.access.check_targets(application.targets(config.values))
        except NotAllowedHere as exc:
            return PingResult(ok=False, endpoint="", status=None, latency_ms=0.0,
                              message_id=None, cause="not_allowed", message=exc.message)
        result = application.ping(config, timeout=self.timeout)
        # (not where it went: an address may hold a secret, as an HTTP API's query can)
        log.info("tested a %s connection: %s in %.1f ms", application.key,
                 "ok" if result.ok else result.cause, result.latency_ms)
        return result

    def _config(
        self, session: Session, connection: Connection
    ) -> tuple[Application, ConnectionConfig]:
        application = self.registry.get(connection.application)
        if application is None:
            raise NotFound(f"The application '{connection.application}' is not installed.")
        secrets = load_secrets(session, self.vault, connection)
        return application, ConnectionConfig(dict(connection.settings), secrets)

    def _commit_secrets(
        self, session: Session, connection: Connection, valid: validation.ValidDraft
    ) -> None:
        session.flush()
        for field, secret in valid.secrets.items():
            store_secret(session, self.vault, connection, field, secret)

    @staticmethod
    def _flush_unique(session: Session) -> None:
        try:
            session.flush()
        except IntegrityError:
            raise ValidationFailed([FieldProblem(
                "name", "a connection with this name was just created; choose another name")]
            ) from None


def _owned(session: Session, principal: Principal, connection_id: str) -> Connection:
    connection = session.get(Connection, connection_id)
    if connection is None or connection.account_id != principal.account_id:
        raise NotFound(f"No connection with id '{connection_id}' in your account.")
    return connection


def _apply(connection: Connection, valid: validation.ValidDraft) -> None:
    connection.name = valid.name
    connection.name_key = name_key(valid.name)
    connection.settings = dict(valid.values)
    connection.concurrency_level = valid.concurrency_level
    connection.borrow_concurrency_from = valid.lender.id if valid.lender else None
    connection.requests_per_second = valid.requests_per_second
    connection.events_per_second = valid.events_per_second


def _rate(rate: float | None) -> float | None:
    return None if rate is None else float(rate)


def _record_test(connection: Connection, result: PingResult) -> None:
    connection.last_test_at = utcnow()
    connection.last_test_ok = result.ok
    connection.last_test = {k: v for k, v in result.public().items() if k != "ok"}
    connection.status = "online" if result.ok else "offline"


def _all_fields(valid: validation.ValidDraft) -> list[str]:
    fields = ["name", "application", *(f"settings.{k}" for k in valid.values),
              *(f"settings.{k}" for k in valid.secrets), "concurrency_level",
              "borrow_concurrency_from", *RATE_FIELDS]
    return fields


def _changed_fields(connection: Connection, valid: validation.ValidDraft) -> list[str]:
    changed = [f"settings.{k}" for k in valid.secrets]  # secrets are re-entered on every save
    if connection.name != valid.name:
        changed.append("name")
    changed += [f"settings.{k}" for k, v in valid.values.items() if connection.settings.get(k) != v]
    if connection.concurrency_level != valid.concurrency_level:
        changed.append("concurrency_level")
    lender_id = valid.lender.id if valid.lender else None
    if connection.borrow_concurrency_from != lender_id:
        changed.append("borrow_concurrency_from")
    changed += [field for field in RATE_FIELDS
                if getattr(connection, field) != getattr(valid, field)]
    return sorted(changed)


def _audit(
    session: Session, account_id: str, actor: str, action: str, connection: Connection,
    fields: list[str],
) -> None:
    session.add(AuditEntry(account_id=account_id, actor=actor, action=action,
                           entity="connection", entity_id=connection.id, fields=fields))

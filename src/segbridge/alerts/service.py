"""AlertService: an account's alert settings (read, validated update, test) and the
notifications themselves (a run finished; a connection's status changed).

Notifying never raises: whatever goes wrong (the database, the mail server, the webhook) is
logged without secrets and the caller's work - a run, a re-test - goes on."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic import BaseModel
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from segbridge.accounts.roles import Permission, require
from segbridge.accounts.service import Principal
from segbridge.alerts import throttle
from segbridge.alerts.mail import send_email
from segbridge.alerts.models import AlertConnectionState, AlertSettingsRow
from segbridge.alerts.notification import (
    Condition,
    DeliveryFailed,
    Notification,
    connection_notification,
    run_notification,
    trial_notification,
)
from segbridge.alerts.secrets import WEBHOOK_FIELD, webhook_aad
from segbridge.alerts.webhook import post_webhook
from segbridge.connections.secret_store import current_ring
from segbridge.core.access import AccessPolicy
from segbridge.core.clock import utcnow
from segbridge.core.errors import FieldProblem, NotAllowedHere, ValidationFailed
from segbridge.core.secrets import Secret, looks_masked
from segbridge.core.settings import Settings
from segbridge.core.vault import Vault
from segbridge.runs.lifecycle import RunStatus
from segbridge.storage.db import Database
from segbridge.storage.models import Connection, Flow, Run

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
MAX_URL_CHARS = 2000
_EMAIL = re.compile(r"[^@\s,;<>\"]{1,64}@([A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}|localhost)")


# ---- the public schemas ------------------------------------------------------------------

@dataclass(frozen=True)
class AlertSettingsDraft:
    """What a user saves. ``webhook_url``: None keeps the stored one, ``""`` removes it."""

    email_recipients: list[str] = field(default_factory=list)
    webhook_url: str | None = None
    run_failed: bool = True
    run_errors_over_count: int | None = None  # notify when a run completes with more errors
    run_errors_over_share: float | None = None  # ... or a larger share of its records failed
    connection_offline: bool = True
    connection_online: bool = True


class AlertSettingsPublic(BaseModel):
    email_recipients: list[str]
    has_webhook_url: bool
    run_failed: bool
    run_errors_over_count: int | None
    run_errors_over_share: float | None
    connection_offline: bool
    connection_online: bool
    smtp_configured: bool
    interval_seconds: int


class AlertTestResult(BaseModel):
    """What a test notification did, per channel: sent, failed: <why>, or not configured."""

    email: str
    webhook: str


@dataclass(frozen=True)
class _Channels:
    recipients: list[str]
    webhook: Secret | None


class AlertService:
    def __init__(self, db: Database, vault: Vault, settings: Settings,
                 access: AccessPolicy) -> None:
        self.db = db
        self.vault = vault
        self.settings = settings
        self.access = access

    # ---- settings ------------------------------------------------------------------------

    def get(self, principal: Principal) -> AlertSettingsPublic:
        require(principal, Permission.VIEW)
        with self.db.session() as session:
            return self._public(session.get(AlertSettingsRow, principal.account_id))

    def update(self, principal: Principal, body: AlertSettingsDraft) -> AlertSettingsPublic:
        require(principal, Permission.EDIT_ALERTS)
        recipients = self._validate(body)
        with self.db.session() as session:
            row = session.get(AlertSettingsRow, principal.account_id)
            if row is None:
                row = AlertSettingsRow(account_id=principal.account_id)
                session.add(row)
            row.email_recipients = recipients
            row.run_failed = body.run_failed
            row.run_errors_over_count = body.run_errors_over_count
            row.run_errors_over_share = body.run_errors_over_share
            row.connection_offline = body.connection_offline
            row.connection_online = body.connection_online
            row.updated_at = utcnow()
            row.updated_by = principal.email
            if body.webhook_url is not None:
                self._store_webhook(session, row, body.webhook_url.strip())
            session.flush()
            return self._public(row)

    def send_test(self, principal: Principal) -> AlertTestResult:
        require(principal, Permission.EDIT_ALERTS)
        with self.db.session() as session:
            channels = self._channels(session, principal.account_id)
        notification = trial_notification(self.settings.base_url, principal.email)
        email, webhook = self._deliver(principal.account_id, channels, notification)
        return AlertTestResult(email=email, webhook=webhook)

    # ---- notifications -------------------------------------------------------------------

    def run_finished(self, run_id: str) -> None:
        """Notify about a finished run if the account asks for its condition (never raises)."""
        try:
            self._run_finished(run_id)
        except Exception:
            log.exception("alerts: could not handle the end of run %s", run_id)

    def check_connections(self) -> int:
        """Notice connections whose status changed since alerts last looked, and notify
        (never raises); returns how many changes this process noticed."""
        try:
            with self.db.session() as session:
                ids = list(session.scalars(
                    select(Connection.id)
                    .outerjoin(AlertConnectionState,
                               AlertConnectionState.connection_id == Connection.id)
                    .where(or_(AlertConnectionState.status.is_(None),
                               AlertConnectionState.status != Connection.status))))
            return sum(self._connection_changed(cid) for cid in ids)
        except Exception:
            log.exception("alerts: could not check the connections' statuses")
            return 0

    # ---- helpers -------------------------------------------------------------------------

    def _run_finished(self, run_id: str) -> None:
        with self.db.session() as session:
            run = session.get(Run, run_id)
            if run is None:
                return
            row = session.get(AlertSettingsRow, run.account_id)
            condition = _run_condition(row, run)
            flow = session.get(Flow, run.flow_id)
            if condition is None or flow is None or row is None:
                return
            if not self._claim(session, run.account_id, flow.id, condition):
                log.info("alerts: run %s %s; flow %s was notified within the interval",
                         run_id, condition.value, flow.id)
                return
            channels = self._channels(session, run.account_id)
            notification = run_notification(condition, self.settings.base_url, flow.name,
                                            run.id, run.status, run.counts or {}, run.message)
        self._deliver(run.account_id, channels, notification)

    def _connection_changed(self, connection_id: str) -> int:
        with self.db.session() as session:
            connection = session.get(Connection, connection_id)
            if connection is None or not _moved(session, connection):
                return 0
            condition = (Condition.CONNECTION_OFFLINE if connection.status == "offline"
                         else Condition.CONNECTION_ONLINE)
            row = session.get(AlertSettingsRow, connection.account_id)
            wanted = row is not None and (row.connection_offline
                                          if condition == Condition.CONNECTION_OFFLINE
                                          else row.connection_online)
            if not wanted or not self._claim(session, connection.account_id, connection.id,
                                             condition):
                return 1
            channels = self._channels(session, connection.account_id)
            cause = (connection.last_test or {}).get("message")
            notification = connection_notification(condition, self.settings.base_url,
                                                   connection.name, connection.id, cause)
            account_id = connection.account_id
        self._deliver(account_id, channels, notification)
        return 1

    def _claim(self, session: Session, account_id: str, subject_id: str,
               condition: Condition) -> bool:
        return throttle.claim(session, account_id, subject_id, condition.value, utcnow(),
                              self.settings.alert_interval_seconds)

    def _deliver(self, account_id: str, channels: _Channels,
                 notification: Notification) -> tuple[str, str]:
        email = webhook = "not configured"
        if channels.recipients:
            email = self._attempt(account_id, "email", notification, lambda: send_email(
                self.settings, channels.recipients, notification))
        if channels.webhook is not None:
            url = channels.webhook
            webhook = self._attempt(account_id, "webhook", notification, lambda: post_webhook(
                url, notification, self.access, self.settings.http_timeout_seconds))
        return email, webhook

    @staticmethod
    def _attempt(account_id: str, channel: str, notification: Notification,
                 send: Callable[[], None]) -> str:
        try:
            send()
        except DeliveryFailed as failed:
            log.warning("alerts: the %s alert (%s) of account %s was not delivered: %s",
                        channel, notification.condition.value, account_id, failed.message)
            return f"failed: {failed.message}"
        except Exception as exc:  # a bug must not reach the run either; no message: it
            log.error("alerts: the %s alert (%s) of account %s failed: %s",  # may hold a URL
                      channel, notification.condition.value, account_id, type(exc).__name__)
            return f"failed: {type(exc).__name__}"
        log.info("alerts: sent the %s alert (%s) of account %s", channel,
                 notification.condition.value, account_id)
        return "sent"

    def _channels(self, session: Session, account_id: str) -> _Channels:
        row = session.get(AlertSettingsRow, account_id)
        if row is None:
            return _Channels([], None)
        webhook = None
        if row.webhook_ciphertext:
            webhook = self.vault.decrypt(row.webhook_ciphertext, webhook_aad(account_id))
        return _Channels(list(row.email_recipients or []), webhook)

    def _store_webhook(self, session: Session, row: AlertSettingsRow, url: str) -> None:
        if not url:
            row.webhook_ciphertext = row.webhook_key_id = None
            return
        ring = current_ring(session, self.vault)
        row.webhook_ciphertext = ring.seal(Secret(url), webhook_aad(row.account_id))
        row.webhook_key_id = ring.primary

    def _validate(self, body: AlertSettingsDraft) -> list[str]:
        problems: list[FieldProblem] = []
        recipients = [r.strip() for r in body.email_recipients]
        if len(recipients) > MAX_RECIPIENTS:
            problems.append(FieldProblem("email_recipients", f"Name at most {MAX_RECIPIENTS} "
                                         "recipients (use a mailing list for more)."))
        for i, address in enumerate(recipients):
            if not _EMAIL.fullmatch(address):
                problems.append(FieldProblem(f"email_recipients.{i}", f"'{address[:100]}' is "
                                             "not an email address; write it as name@example.com."))
        if len(set(recipients)) != len(recipients):
            problems.append(FieldProblem("email_recipients", "Name each recipient once."))
        if body.webhook_url:
            problems += self._webhook_problems(body.webhook_url.strip())
        count, share = body.run_errors_over_count, body.run_errors_over_share
        if count is not None and count < 0:
            problems.append(FieldProblem("run_errors_over_count", "Use 0 or more (0: any "
                                         "record error), or null to not use a count."))
        if share is not None and not 0 <= share < 1:
            problems.append(FieldProblem("run_errors_over_share", "Use a share from 0 to "
                                         "below 1 (0.05 is 5%), or null to not use a share."))
        if problems:
            raise ValidationFailed(problems)
        return recipients

    def _webhook_problems(self, url: str) -> list[FieldProblem]:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:  # "http://[": not a URL at all
            host = None
        if len(url) > MAX_URL_CHARS or not host or parts.scheme not in ("http", "https") \
                or any(c.isspace() for c in url) or looks_masked(url):
            return [FieldProblem(WEBHOOK_FIELD, "Enter the webhook's whole URL, starting "
                                 "with https:// (for Slack: an Incoming Webhook URL).")]
        try:
            self.access.check_url(url, field=WEBHOOK_FIELD)
        except NotAllowedHere as refused:
            return [FieldProblem(WEBHOOK_FIELD, refused.message)]
        return []

    def _public(self, row: AlertSettingsRow | None) -> AlertSettingsPublic:
        shown = row or AlertSettingsRow(email_recipients=[], run_failed=True,
                                        connection_offline=True, connection_online=True)
        return AlertSettingsPublic(
            email_recipients=list(shown.email_recipients or []),
            has_webhook_url=bool(shown.webhook_ciphertext),
            run_failed=bool(shown.run_failed),
            run_errors_over_count=shown.run_errors_over_count,
            run_errors_over_share=shown.run_errors_over_share,
            connection_offline=bool(shown.connection_offline),
            connection_online=bool(shown.connection_online),
            smtp_configured=bool(self.settings.smtp_host),
            interval_seconds=self.settings.alert_interval_seconds)


def _run_condition(row: AlertSettingsRow | None, run: Run) -> Condition | None:
    """The condition a finished run meets for these settings, if any."""
    if row is None:
        return None
    if run.status == RunStatus.FAILED:
        return Condition.RUN_FAILED if row.run_failed else None
    if run.status != RunStatus.COMPLETED_WITH_ERRORS:
        return None
    failed = int((run.counts or {}).get("failed", 0))
    exported = int((run.counts or {}).get("exported", 0))
    over_count = row.run_errors_over_count is not None and failed > row.run_errors_over_count
    over_share = row.run_errors_over_share is not None and exported > 0 \
        and failed / exported > row.run_errors_over_share
    return Condition.RUN_ERRORS if over_count or over_share else None


def _moved(session: Session, connection: Connection) -> bool:
    """Record the connection's status as seen by alerts; True if this caller saw it change.
    A connection alerts have not seen yet counts as having been online (connections are
    saved after a passing test)."""
    state = session.get(AlertConnectionState, connection.id)
    if state is None:
        first = throttle.insert_if_absent(session, AlertConnectionState, {
            "connection_id": connection.id, "account_id": connection.account_id,
            "status": connection.status, "changed_at": utcnow()}, ["connection_id"])
        return first and connection.status == "offline"
    if state.status == connection.status:
        return False
    moved = session.execute(
        update(AlertConnectionState)
        .where(AlertConnectionState.connection_id == connection.id,
               AlertConnectionState.status == state.status)
        .values(status=connection.status, changed_at=utcnow())
        .execution_options(synchronize_session=False))
    return bool(getattr(moved, "rowcount", 0) == 1)

"""Webhook listeners: a flow's own URL, its verification secret, its counts and last payloads.

A flow whose export is ``type: webhook`` gets a listener on request (``create``): an
unguessable token (32 random bytes) shown once in its URL ``<base>/hooks/<token>`` and stored
only as its SHA-256. ``rotate`` replaces it: the old URL answers 404 from that moment (the
intake checks the token's hash again in the transaction that stores a request's records). The
secret (HMAC secret, Basic password or token) is write-only, encrypted by the vault and bound
to the account, the flow and the field. Another account's flows answer 404.

Masking: the last payloads are kept with the export's ``sensitive_fields`` masked (the
records sent are not changed), and shown only to the roles that may see record data
(``VIEW_RECORD_DATA``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from segbridge.accounts.roles import Permission, require
from segbridge.accounts.service import Principal
from segbridge.apps.webhook.document import WebhookExport
from segbridge.apps.webhook.verification import fingerprint
from segbridge.connections.secret_store import current_ring
from segbridge.core.clock import utcnow
from segbridge.core.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from segbridge.core.ids import new_token
from segbridge.core.public import PublicForm
from segbridge.core.secrets import Secret
from segbridge.core.vault import KeyRing, Vault, associated_data
from segbridge.storage.db import Database
from segbridge.storage.models import Flow
from segbridge.storage.webhook_models import WebhookListener, WebhookRecent, WebhookRecord

HOOKS_PATH = "/hooks"
SECRET_FIELD = "webhook_secret"  # noqa: S105 - the name of the field, in the associated data
RECENT_PAYLOADS = 20  # the last payloads kept per flow, for its page
MAX_SECRET_CHARS = 1000


def secret_aad(account_id: str, flow_id: str) -> bytes:
    return associated_data(account_id, flow_id, SECRET_FIELD)


class WebhookListenerPublic(PublicForm):
    """A flow's listener as the API shows it: never its token (shown once) nor its secret."""

    flow_id: str
    url: str | None = None  # only in the answer of create and rotate
    verification: str
    has_secret: bool
    received: int
    verified: int
    rejected: int
    records: int
    waiting: int  # records received and not yet delivered by a finished run
    created_at: datetime
    rotated_at: datetime | None


class WebhookPayloadPublic(PublicForm):
    """One of the last payloads a listener received."""

    received_at: datetime
    request_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class WebhookListeners:
    """The listeners' service (API, pages): every call checks the caller's role and account."""

    db: Database
    vault: Vault
    base_url: Callable[[], str]

    def create(self, principal: Principal, flow_id: str) -> WebhookListenerPublic:
        require(principal, Permission.EDIT_FLOWS)
        token = new_token()
        with self.db.session() as session:
            flow = _webhook_flow(session, principal, flow_id, change=True)
            if session.get(WebhookListener, flow.id) is not None:
                raise Conflict("This flow has its webhook URL already; rotate it to get a new "
                               "one (the old one then stops working).")
            listener = WebhookListener(flow_id=flow.id, account_id=flow.account_id,
                                       token_hash=fingerprint(token), received=0, verified=0,
                                       rejected=0, records=0, created_at=utcnow())
            session.add(listener)
            session.flush()
            return self._public(session, flow, listener, token)

    def rotate(self, principal: Principal, flow_id: str) -> WebhookListenerPublic:
        require(principal, Permission.EDIT_FLOWS)
        token = new_token()
        with self.db.session() as session:
            flow = _webhook_flow(session, principal, flow_id, change=True)
            listener = _listener(session, flow)
            listener.token_hash = fingerprint(token)
            listener.rotated_at = utcnow()
            session.flush()
            return self._public(session, flow, listener, token)

    def get(self, principal: Principal, flow_id: str) -> WebhookListenerPublic:
        require(principal, Permission.VIEW)
        with self.db.session() as session:
            flow = _webhook_flow(session, principal, flow_id)
            return self._public(session, flow, _listener(session, flow), None)

    def find(self, principal: Principal, flow_id: str) -> WebhookListenerPublic | None:
        """The listener of a webhook flow, None when it has none yet (the flow's page)."""
        require(principal, Permission.VIEW)
        with self.db.session() as session:
            flow = _webhook_flow(session, principal, flow_id)
            listener = session.get(WebhookListener, flow.id)
            return None if listener is None else self._public(session, flow, listener, None)

    def set_secret(self, principal: Principal, flow_id: str,
                   secret: Secret | None) -> WebhookListenerPublic:
        """Set (or with None remove) the verification secret; it is never answered back."""
        require(principal, Permission.EDIT_FLOWS)
        if secret is not None and not 1 <= len(secret.reveal()) <= MAX_SECRET_CHARS:
            raise ValidationFailed([FieldProblem("secret", f"use 1 to {MAX_SECRET_CHARS} "
                                                           "characters")])
        with self.db.session() as session:
            flow = _webhook_flow(session, principal, flow_id, change=True)
            listener = _listener(session, flow)
            if secret is None:
                listener.secret_ciphertext = listener.secret_key_id = None
            else:
                ring = current_ring(session, self.vault)
                listener.secret_ciphertext = ring.seal(secret, secret_aad(flow.account_id,
                                                                          flow.id))
                listener.secret_key_id = ring.primary
            session.flush()
            return self._public(session, flow, listener, None)

    def payloads(self, principal: Principal, flow_id: str,
                 limit: int = RECENT_PAYLOADS) -> list[WebhookPayloadPublic]:
        """The last payloads received, newest first."""
        require(principal, Permission.VIEW_RECORD_DATA)
        with self.db.session() as session:
            flow = _webhook_flow(session, principal, flow_id)
            rows = session.scalars(select(WebhookRecent).where(WebhookRecent.flow_id == flow.id)
                                   .order_by(WebhookRecent.id.desc()).limit(limit))
            return [WebhookPayloadPublic(received_at=row.received_at,
                                         request_id=row.request_id, payload=row.payload)
                    for row in rows]

    def _public(self, session: Session, flow: Flow, listener: WebhookListener,
                token: str | None) -> WebhookListenerPublic:
        waiting = session.scalar(select(func.count()).select_from(WebhookRecord).where(
            WebhookRecord.flow_id == flow.id, WebhookRecord.id > delivered_through(flow)))
        export = WebhookExport.model_validate(flow.definition["export"])
        return WebhookListenerPublic(
            flow_id=flow.id, url=f"{self.base_url()}{HOOKS_PATH}/{token}" if token else None,
            verification=export.verification.kind,
            has_secret=listener.secret_ciphertext is not None, received=listener.received,
            verified=listener.verified, rejected=listener.rejected, records=listener.records,
            waiting=int(waiting or 0), created_at=listener.created_at,
            rotated_at=listener.rotated_at)


def delivered_through(flow: Flow) -> int:
    """The last record id a finished run of the flow delivered (0: none yet)."""
    from segbridge.apps.webhook.export import CURSOR

    cursor = flow.cursor or {}
    value = cursor.get(CURSOR) if isinstance(cursor, dict) else None
    return int(value) if isinstance(value, int) else 0


def is_webhook_flow(flow: Flow) -> bool:
    export = (flow.definition or {}).get("export") or {}
    return isinstance(export, dict) and export.get("type") == "webhook"


def _webhook_flow(session: Session, principal: Principal, flow_id: str, *,
                  change: bool = False) -> Flow:
    """The caller's webhook flow; another kind of flow has no listener to read (404) nor to
    change (409)."""
    flow = session.get(Flow, flow_id)
    if flow is None or flow.account_id != principal.account_id:
        raise NotFound(f"No flow with id '{flow_id}' in your account.")
    if not is_webhook_flow(flow):
        error = Conflict if change else NotFound
        raise error(f"The flow '{flow.name}' does not receive webhooks: its source is not "
                    "`type: webhook`.")
    return flow


def _listener(session: Session, flow: Flow) -> WebhookListener:
    listener = session.get(WebhookListener, flow.id)
    if listener is None:
        raise NotFound(f"The flow '{flow.name}' has no webhook URL yet; create it first "
                       f"(POST /api/v1/flows/{flow.id}/webhook).")
    return listener


def reencrypt(session: Session, ring: KeyRing) -> int:
    """Re-encrypt with the primary key every listener secret another key encrypts (for
    ``segbridge keys rotate``, beside the connections' and the alerts' secrets)."""
    rows = session.scalars(select(WebhookListener).where(
        WebhookListener.secret_ciphertext.is_not(None),
        WebhookListener.secret_key_id != ring.primary).with_for_update())
    count = 0
    for row in rows:
        aad = secret_aad(row.account_id, row.flow_id)
        row.secret_ciphertext = ring.seal(ring.unseal(row.secret_ciphertext or "", aad), aad)
        row.secret_key_id = ring.primary
        count += 1
    return count


def secrets_per_key(session: Session) -> dict[str, int]:
    """How many listener secrets each master key encrypts."""
    counted = session.execute(
        select(WebhookListener.secret_key_id, func.count())
        .where(WebhookListener.secret_ciphertext.is_not(None))
        .group_by(WebhookListener.secret_key_id))
    return {str(key_id): int(n) for key_id, n in counted}

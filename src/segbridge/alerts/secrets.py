"""The alerts' one secret (each account's webhook URL) under master key rotation: what
``segbridge keys rotate`` / ``prune`` must re-encrypt and count next to the connections'
secrets (``segbridge.keys._settle`` and ``key_states``), so no retired key is dropped while
a webhook URL still needs it."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from segbridge.alerts.models import AlertSettingsRow
from segbridge.core.vault import KeyRing, associated_data

WEBHOOK_FIELD = "webhook_url"
WEBHOOK_OWNER = "alerts"  # the vault's associated data: account | "alerts" | "webhook_url"


def webhook_aad(account_id: str) -> bytes:
    return associated_data(account_id, WEBHOOK_OWNER, WEBHOOK_FIELD)


def reencrypt(session: Session, ring: KeyRing) -> int:
    """Re-encrypt with the primary key every webhook URL another key encrypts (the caller
    holds the primary key's row, as ``connections.secret_store.reencrypt`` does)."""
    rows = session.scalars(
        select(AlertSettingsRow)
        .where(AlertSettingsRow.webhook_ciphertext.is_not(None),
               AlertSettingsRow.webhook_key_id != ring.primary)
        .order_by(AlertSettingsRow.account_id)
        .with_for_update())
    count = 0
    for row in rows:
        aad = webhook_aad(row.account_id)
        row.webhook_ciphertext = ring.seal(ring.unseal(row.webhook_ciphertext or "", aad), aad)
        row.webhook_key_id = ring.primary
        count += 1
    return count


def secrets_per_key(session: Session) -> dict[str, int]:
    """How many webhook URLs each master key encrypts."""
    counted = session.execute(
        select(AlertSettingsRow.webhook_key_id, func.count())
        .where(AlertSettingsRow.webhook_ciphertext.is_not(None))
        .group_by(AlertSettingsRow.webhook_key_id))
    return {str(key_id): int(n) for key_id, n in counted}

"""Master keys: load or create the key ring at start, check it against the database, rotate.

- First start (no key anywhere, no secret in the database): a key is generated and written to
  ``<home>/master.key`` with mode 0600.
- A missing or wrong key when the database holds secrets stops start-up with a clear message;
  nothing is overwritten.
- ``rotate``: add a new primary key, re-encrypt every secret in one transaction, then drop the
  old keys from the ring. Old keys stay readable until that transaction has committed.
"""

from __future__ import annotations

from sqlalchemy import select

from segbridge.core.clock import utcnow
from segbridge.core.errors import ConfigurationError
from segbridge.core.settings import Settings
from segbridge.core.vault import (
    KeyRing,
    Vault,
    decode_key,
    new_key,
    read_key_ring,
    write_key_ring,
)
from segbridge.storage.db import Database
from segbridge.storage.models import ConnectionSecret, VaultKey


def load_vault(settings: Settings, db: Database) -> Vault:
    used = _key_ids_in_use(db)
    ring = _read_or_create_ring(settings, used)
    missing = sorted(used - set(ring.keys))
    if missing:
        raise ConfigurationError(
            "The master key does not match this database: its secrets were encrypted with key "
            f"id(s) {', '.join(missing)}, but the key ring holds {', '.join(sorted(ring.keys))}. "
            "Start segbridge with the right SEGBRIDGE_MASTER_KEY or master key file. "
            "Nothing was changed."
        )
    _remember(db, ring.primary)
    return Vault(ring)


def rotate(settings: Settings, db: Database, vault: Vault) -> tuple[Vault, int]:
    """Re-encrypt every secret with a new primary key; return the new vault and the count."""
    if settings.master_key is not None:
        raise ConfigurationError(
            "Key rotation rewrites the key ring file, but this server takes its key from "
            "SEGBRIDGE_MASTER_KEY. Move the key to a key file (SEGBRIDGE_MASTER_KEY_FILE) first.")
    path = settings.resolved_master_key_file
    rotated = Vault(vault.ring.with_new_primary(new_key()))
    write_key_ring(path, rotated.ring)
    _remember(db, rotated.primary_key_id)
    count = _reencrypt_all(db, vault, rotated)
    final = Vault(rotated.ring.only_primary())
    write_key_ring(path, final.ring)
    return final, count


def _reencrypt_all(db: Database, old: Vault, new: Vault) -> int:
    from segbridge.connections.secret_store import reencrypt

    with db.session() as session:
        count = reencrypt(session, old, new)
        for row in session.scalars(select(VaultKey)):
            if row.key_id != new.primary_key_id and row.retired_at is None:
                row.retired_at = utcnow()
    return count


def _read_or_create_ring(settings: Settings, used: set[str]) -> KeyRing:
    if settings.master_key is not None:
        return KeyRing.single(decode_key(settings.master_key.get_secret_value()))
    path = settings.resolved_master_key_file
    if path.exists():
        return read_key_ring(path)
    if used:
        raise ConfigurationError(
            f"The master key file {path} is missing, but this database holds secrets encrypted "
            f"with key id(s) {', '.join(sorted(used))}. Restore the key file from your backup or "
            "set SEGBRIDGE_MASTER_KEY. segbridge will not create a new key over existing secrets."
        )
    ring = KeyRing.single(new_key())
    write_key_ring(path, ring)
    return ring


def _key_ids_in_use(db: Database) -> set[str]:
    with db.session() as session:
        from_secrets = set(session.scalars(select(ConnectionSecret.key_id).distinct()))
        active = select(VaultKey.key_id).where(VaultKey.retired_at.is_(None))
        recorded = set(session.scalars(active))
    return from_secrets | recorded


def _remember(db: Database, key_id: str) -> None:
    with db.session() as session:
        if session.get(VaultKey, key_id) is None:
            session.add(VaultKey(key_id=key_id))

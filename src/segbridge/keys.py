"""Master keys: load or create the key ring at start, check it against the database, rotate, prune.

- First start (no key anywhere, no secret in the database): a key is generated and written to
  ``<home>/master.key`` with mode 0600. A key file that group or others may read is refused.
- A missing or wrong key when the database holds secrets stops start-up with a clear message;
  nothing is overwritten.
- ``rotate``: add a new primary key to the ring file, retire the old one in ``vault_keys``
  (waiting for secrets being written with it), re-encrypt every secret with the new key. The key
  that was primary stays in the ring, for decryption only, until ``prune``; keys retired by
  earlier rotations that no secret uses are removed.
- ``prune``: re-encrypt any secret still on a retired key, then remove every retired key that
  no secret uses from the ring.

Running servers and CLI processes follow the ring file (see ``core/vault.py``): they encrypt with
the new primary key from their next write on, and read secrets re-encrypted under it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from segbridge.core.clock import utcnow
from segbridge.core.errors import ConfigurationError
from segbridge.core.settings import Settings
from segbridge.core.vault import (
    PRIVATE_MODE,
    KeyRing,
    Vault,
    decode_key,
    new_key,
    read_key_ring,
    write_key_ring,
)
from segbridge.storage.db import Database
from segbridge.storage.models import ConnectionSecret, VaultKey

PRIMARY = "primary"
RETIRED = "retired"
REMOVED = "removed"
MISSING = "missing"


@dataclass(frozen=True)
class KeyState:
    """One master key as `segbridge keys status` shows it (never the key itself)."""

    key_id: str
    state: str  # primary | retired (in the ring, decrypt only) | removed | missing
    secrets: int
    created_at: datetime | None
    retired_at: datetime | None

    @property
    def in_ring(self) -> bool:
        return self.state in (PRIMARY, RETIRED)


@dataclass(frozen=True)
class KeyChange:
    """What a rotation or a prune did to the ring and the secrets."""

    primary: str
    reencrypted: int
    removed: list[str]
    kept: list[KeyState]
    previous: str | None = None


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
    key_file = None if settings.master_key is not None else settings.resolved_master_key_file
    return Vault(ring, key_file)


def rotate(settings: Settings, db: Database, vault: Vault) -> KeyChange:
    """A new primary key; every secret re-encrypted with it; the old primary kept, retired."""
    path = _key_file_to_change(settings, "Key rotation")
    with _ring_lock(path):
        before = read_key_ring(path)
        ring = before.with_new_primary(new_key())
        write_key_ring(path, ring)
        change = _settle(db, path, ring, keep={before.primary})
    vault.reload()
    return replace(change, previous=before.primary)


def prune(settings: Settings, db: Database, vault: Vault) -> KeyChange:
    """Re-encrypt stragglers, then remove every retired key no secret uses from the ring."""
    path = _key_file_to_change(settings, "Pruning retired keys")
    with _ring_lock(path):
        change = _settle(db, path, read_key_ring(path), keep=set())
    vault.reload()
    return change


def status(db: Database, vault: Vault) -> list[KeyState]:
    return key_states(db, vault.refresh())


def key_states(db: Database, ring: KeyRing) -> list[KeyState]:
    with db.session() as session:
        recorded = {row.key_id: row for row in session.scalars(select(VaultKey))}
        uses = _secrets_per_key(session)
    ids = set(recorded) | set(ring.keys) | set(uses)
    states = [KeyState(kid, _state_of(kid, ring, uses), uses.get(kid, 0),
                       recorded[kid].created_at if kid in recorded else None,
                       recorded[kid].retired_at if kid in recorded else None) for kid in ids]
    order = [PRIMARY, RETIRED, MISSING, REMOVED]
    return sorted(states, key=lambda s: (order.index(s.state), str(s.retired_at), s.key_id))


def _secrets_per_key(session: Session) -> dict[str, int]:
    """How many stored secrets each key seals: connections' secrets, alert webhook URLs and
    webhook listeners' secrets."""
    from segbridge.alerts import secrets as alert_secrets
    from segbridge.connections.secret_store import secrets_per_key
    from segbridge.runs import webhook_listeners

    uses = secrets_per_key(session)
    for more in (alert_secrets.secrets_per_key(session),
                 webhook_listeners.secrets_per_key(session)):
        for key_id, count in more.items():
            uses[key_id] = uses.get(key_id, 0) + count
    return uses


def _state_of(key_id: str, ring: KeyRing, uses: dict[str, int]) -> str:
    if key_id == ring.primary:
        return PRIMARY
    if key_id in ring.keys:
        return RETIRED
    return MISSING if uses.get(key_id) else REMOVED


def _settle(db: Database, path: Path, ring: KeyRing, keep: set[str]) -> KeyChange:
    """Retire all but the primary key, re-encrypt onto it, remove unused retired keys not kept."""
    from segbridge.alerts import secrets as alert_secrets
    from segbridge.connections.secret_store import reencrypt
    from segbridge.runs import webhook_listeners

    _retire_all_but(db, ring.primary)
    with db.session() as session:  # connections', the alerts' and the listeners' secrets
        count = (reencrypt(session, ring) + alert_secrets.reencrypt(session, ring)
                 + webhook_listeners.reencrypt(session, ring))
    with db.session() as session:
        uses = _secrets_per_key(session)
    removable = {kid for kid in ring.retired if kid not in keep and not uses.get(kid)}
    if removable:
        ring = ring.without(removable)
        write_key_ring(path, ring)
    kept = [state for state in key_states(db, ring) if state.state == RETIRED]
    return KeyChange(ring.primary, count, sorted(removable), kept)


def _retire_all_but(db: Database, primary: str) -> None:
    """Mark every other key retired; waits for secrets being written with them to commit."""
    from segbridge.connections.secret_store import record_key

    with db.session() as session:
        record_key(session, primary)
        session.execute(
            update(VaultKey)
            .where(VaultKey.key_id != primary, VaultKey.retired_at.is_(None))
            .values(retired_at=utcnow())
            .execution_options(synchronize_session=False))


def _key_file_to_change(settings: Settings, what: str) -> Path:
    if settings.master_key is not None:
        raise ConfigurationError(
            f"{what} rewrites the key ring file, but this server takes its key from "
            "SEGBRIDGE_MASTER_KEY. Move the key to a key file (SEGBRIDGE_MASTER_KEY_FILE) first.")
    return settings.resolved_master_key_file


@contextmanager
def _ring_lock(path: Path) -> Iterator[None]:
    """One rotation or prune at a time on this key file (a lock file next to it)."""
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    except OSError as exc:
        raise ConfigurationError(
            f"segbridge cannot create {lock} ({exc.strerror}), which guards the key file while "
            f"it changes. Give segbridge's user write access to {path.parent}."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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
    from segbridge.connections.secret_store import record_key

    with db.session() as session:
        if session.get(VaultKey, key_id) is None:  # a read first: start-up takes no lock
            record_key(session, key_id)

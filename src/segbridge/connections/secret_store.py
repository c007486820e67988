"""Secret fields of connections, encrypted by the vault and bound to account, connection, field.

Rotation safety: whoever writes a ciphertext first takes the lock on its master key's
``vault_keys`` row (``hold_key``) and checks the key is not retired. Key rotation retires a key
by updating that row, so it waits for secrets being written with the key, and a writer that comes
after it sees the key retired, reads the key file again and encrypts with the new primary key.
After the rotation's re-encryption no secret uses a retired key, and none will.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from segbridge.core.clock import utcnow
from segbridge.core.secrets import Secret
from segbridge.core.vault import KeyRing, Vault, VaultError, associated_data
from segbridge.storage.models import Connection, ConnectionSecret, VaultKey

_HELD_RING = "segbridge.vault.held_ring"


def store_secret(
    session: Session, vault: Vault, connection: Connection, field: str, secret: Secret
) -> None:
    aad = associated_data(connection.account_id, connection.id, field)
    ring = current_ring(session, vault)
    row = session.get(ConnectionSecret, (connection.id, field))
    ciphertext = ring.seal(secret, aad)
    if row is None:
        session.add(ConnectionSecret(connection_id=connection.id, field=field,
                                     ciphertext=ciphertext, key_id=ring.primary))
    else:
        row.ciphertext = ciphertext
        row.key_id = ring.primary


def current_ring(session: Session, vault: Vault) -> KeyRing:
    """The vault's ring, its primary key locked in use until the transaction ends.

    Every secret of one transaction uses the same ring: a transaction that held one key and
    then waited for another's lock could deadlock with a rotation retiring the first.
    """
    session.connection()  # begins the transaction if none has begun yet
    transaction = session.get_transaction()
    held = session.info.get(_HELD_RING)
    if held is not None and held[0] is transaction:
        return held[1]  # type: ignore[no-any-return]
    ring = _unretired_ring(session, vault)
    session.info[_HELD_RING] = (transaction, ring)
    return ring


def _unretired_ring(session: Session, vault: Vault) -> KeyRing:
    ring = vault.refresh()
    if hold_key(session, ring.primary) is None:
        return ring
    ring = vault.reload()
    if hold_key(session, ring.primary) is None:
        return ring
    source = vault.key_file or "SEGBRIDGE_MASTER_KEY"
    raise VaultError(
        f"Master key {ring.primary} was retired by `segbridge keys rotate`, but this process's "
        f"key ring ({source}) still names it primary. Copy the current key file from the machine "
        "where the rotation ran (or use it through SEGBRIDGE_MASTER_KEY_FILE), then try again."
    )


def hold_key(session: Session, key_id: str) -> datetime | None:
    """Lock ``key_id``'s vault_keys row until commit; return when it was retired (None: in use).

    An update of the row locks it on PostgreSQL and takes SQLite's write lock. A key not yet
    recorded (a rotation is recording it right now) is recorded here.
    """
    if not _touch(session, key_id):
        record_key(session, key_id)
        _touch(session, key_id)
    return session.scalar(select(VaultKey.retired_at).where(VaultKey.key_id == key_id))


def _touch(session: Session, key_id: str) -> bool:
    result = session.execute(
        update(VaultKey).where(VaultKey.key_id == key_id)
        .values(retired_at=VaultKey.retired_at)
        .execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))


def record_key(session: Session, key_id: str) -> None:
    """Insert the key's row unless it exists (a concurrent insert waits, then does nothing)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(VaultKey).values(key_id=key_id, created_at=utcnow())
                        .on_conflict_do_nothing(index_elements=["key_id"]))
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(VaultKey).values(key_id=key_id, created_at=utcnow())
                        .on_conflict_do_nothing(index_elements=["key_id"]))
    elif session.get(VaultKey, key_id) is None:
        session.add(VaultKey(key_id=key_id))
        session.flush()


def load_secrets(session: Session, vault: Vault, connection: Connection) -> dict[str, Secret]:
    rows = session.scalars(
        select(ConnectionSecret).where(ConnectionSecret.connection_id == connection.id))
    return {
        row.field: vault.decrypt(
            row.ciphertext, associated_data(connection.account_id, connection.id, row.field))
        for row in rows
    }


def secret_fields(session: Session, connection_id: str) -> set[str]:
    return set(session.scalars(
        select(ConnectionSecret.field).where(ConnectionSecret.connection_id == connection_id)))


def reencrypt(session: Session, ring: KeyRing) -> int:
    """Re-encrypt with the primary key every secret, of every account, that another key encrypts.

    Holds the primary key's row first (the lock writers take), then locks the rows it rewrites.
    """
    hold_key(session, ring.primary)
    count = 0
    rows = session.execute(
        select(ConnectionSecret, Connection.account_id)
        .join(Connection, Connection.id == ConnectionSecret.connection_id)
        .where(ConnectionSecret.key_id != ring.primary)
        .order_by(ConnectionSecret.connection_id, ConnectionSecret.field)
        .with_for_update(of=ConnectionSecret))
    for row, account_id in rows:
        aad = associated_data(account_id, row.connection_id, row.field)
        row.ciphertext = ring.seal(ring.unseal(row.ciphertext, aad), aad)
        row.key_id = ring.primary
        count += 1
    return count


def secrets_per_key(session: Session) -> dict[str, int]:
    """How many stored secrets each master key encrypts."""
    counted = session.execute(
        select(ConnectionSecret.key_id, func.count()).group_by(ConnectionSecret.key_id))
    return {str(key_id): int(n) for key_id, n in counted}

"""Secret fields of connections, encrypted by the vault and bound to account, connection, field."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from segbridge.core.secrets import Secret
from segbridge.core.vault import Vault, associated_data
from segbridge.storage.models import Connection, ConnectionSecret


def store_secret(
    session: Session, vault: Vault, connection: Connection, field: str, secret: Secret
) -> None:
    aad = associated_data(connection.account_id, connection.id, field)
    row = session.get(ConnectionSecret, (connection.id, field))
    ciphertext = vault.encrypt(secret, aad)
    if row is None:
        session.add(ConnectionSecret(connection_id=connection.id, field=field,
                                     ciphertext=ciphertext, key_id=vault.primary_key_id))
    else:
        row.ciphertext = ciphertext
        row.key_id = vault.primary_key_id


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


def reencrypt(session: Session, old: Vault, new: Vault) -> int:
    """Re-encrypt every secret of every account with ``new``'s primary key."""
    count = 0
    rows = session.execute(
        select(ConnectionSecret, Connection.account_id)
        .join(Connection, Connection.id == ConnectionSecret.connection_id))
    for row, account_id in rows:
        aad = associated_data(account_id, row.connection_id, row.field)
        row.ciphertext = new.encrypt(old.decrypt(row.ciphertext, aad), aad)
        row.key_id = new.primary_key_id
        count += 1
    return count

"""The vault: AES-256-GCM encryption of secrets at rest, with a key ring for rotation.

Ciphertext format (ASCII, stored as text): ``v1.<key_id>.<base64url(nonce || ciphertext+tag)>``.
- a fresh 96-bit nonce per value;
- ``key_id`` is the first 16 hex digits of SHA-256 of the key, so a wrong key is recognised;
- associated data binds the ciphertext to its place (account, connection, field): a
  ciphertext copied to another row fails to decrypt.

Key ring file: JSON ``{"keys": ["<base64 key>", ...], "primary": "<key_id>"}`` with mode 0600.
The primary key encrypts; every other key in the ring is a retired key kept for decryption
until no secret uses it. A key file that group or others may read or write is refused.

A vault made from a key file follows that file: before encrypting it checks (one ``stat``)
whether the file was replaced, and a ciphertext naming a key it lacks makes it read the file
again; so a rotation reaches every running server and CLI process without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from segbridge.core.errors import ConfigurationError, SegbridgeError
from segbridge.core.secrets import Secret

VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
PRIVATE_MODE = 0o600


class VaultError(SegbridgeError):
    """A secret could not be decrypted: wrong key, or moved to another row."""

    code = "vault_error"


def key_id_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def associated_data(account_id: str, owner_id: str, field: str) -> bytes:
    return f"segbridge/{VERSION}|{account_id}|{owner_id}|{field}".encode()


@dataclass(frozen=True)
class KeyRing:
    """All master keys that can decrypt, and the primary one that encrypts."""

    keys: dict[str, bytes]
    primary: str

    @classmethod
    def single(cls, key: bytes) -> KeyRing:
        _check_length(key)
        return cls(keys={key_id_of(key): key}, primary=key_id_of(key))

    def with_new_primary(self, key: bytes) -> KeyRing:
        _check_length(key)
        return KeyRing(keys={**self.keys, key_id_of(key): key}, primary=key_id_of(key))

    def without(self, key_ids: set[str]) -> KeyRing:
        """The ring less some retired keys; the primary key is never removed."""
        kept = {kid: key for kid, key in self.keys.items() if kid not in key_ids - {self.primary}}
        return KeyRing(keys=kept, primary=self.primary)

    @property
    def retired(self) -> list[str]:
        """Key ids kept for decryption only."""
        return [kid for kid in self.keys if kid != self.primary]

    def seal(self, secret: Secret, aad: bytes) -> str:
        """Encrypt with the primary key."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.primary]).encrypt(nonce, secret.reveal().encode(), aad)
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{VERSION}.{self.primary}.{body}"

    def unseal(self, ciphertext: str, aad: bytes) -> Secret:
        version, key_id, body = _split(ciphertext)
        key = self.keys.get(key_id)
        if version != VERSION or key is None:
            raise VaultError(
                f"A secret was encrypted with master key {key_id}, which is not in the key ring. "
                "Start segbridge with the master key this database was created with."
            )
        raw = base64.urlsafe_b64decode(body)
        try:
            plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except InvalidTag:
            raise VaultError(
                "A secret failed its integrity check: it was altered or copied from another "
                "connection. Enter the secret again."
            ) from None
        return Secret(plain.decode())


class Vault:
    """Encrypts and decrypts secrets with the key ring, following its key file if it has one."""

    def __init__(self, ring: KeyRing, key_file: Path | None = None) -> None:
        self._ring = ring
        self._key_file = key_file
        self._seen = _identity(key_file) if key_file is not None else None
        self._lock = threading.Lock()

    @property
    def ring(self) -> KeyRing:
        return self._ring

    @property
    def key_file(self) -> Path | None:
        """The key ring file this vault follows; None when the key came from the environment."""
        return self._key_file

    @property
    def primary_key_id(self) -> str:
        return self._ring.primary

    def can_decrypt_with(self, key_id: str) -> bool:
        return key_id in self._ring.keys

    def refresh(self) -> KeyRing:
        """The current ring: read the key file again if it was replaced since it was read."""
        if self._key_file is not None and _identity(self._key_file) != self._seen:
            return self.reload()
        return self._ring

    def reload(self) -> KeyRing:
        """Read the key file again (a no-op for a key from the environment)."""
        if self._key_file is None:
            return self._ring
        with self._lock:
            seen = _identity(self._key_file)
            self._ring = read_key_ring(self._key_file)
            self._seen = seen
        return self._ring

    def encrypt(self, secret: Secret, aad: bytes) -> str:
        return self.refresh().seal(secret, aad)

    def decrypt(self, ciphertext: str, aad: bytes) -> Secret:
        ring, key_id = self._ring, Vault.key_id_in(ciphertext)
        if self._key_file is not None and key_id not in ring.keys:
            ring = self.reload()
            if key_id not in ring.keys:
                raise VaultError(
                    f"A secret was encrypted with master key {key_id}, which is not in the key "
                    f"ring file {self._key_file}. If `segbridge keys rotate` ran on another "
                    "machine, copy its key file here (running processes read it again on their "
                    "own); otherwise restore the key file this database was used with.")
        return ring.unseal(ciphertext, aad)

    @staticmethod
    def key_id_in(ciphertext: str) -> str:
        return _split(ciphertext)[1]


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when the key file is rewritten (a rotation replaces it: a new inode)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size


def _split(ciphertext: str) -> tuple[str, str, str]:
    parts = ciphertext.split(".", 2)
    if len(parts) != 3:
        raise VaultError("A stored secret is not in the vault's format; enter the secret again.")
    return parts[0], parts[1], parts[2]


def _check_length(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"The master key must be {KEY_BYTES} bytes (base64 of 32 random bytes); "
            f"got {len(key)} bytes. Generate one with: "
            "python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'"
        )


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def decode_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ConfigurationError(
            "SEGBRIDGE_MASTER_KEY is not valid base64; it must be base64 of 32 random bytes."
        ) from None
    _check_length(key)
    return key


def read_key_ring(path: Path) -> KeyRing:
    """Read the key ring; refuse a file that group or others may read or write."""
    try:
        check_private(path)
        data = json.loads(path.read_text())
        keys = {key_id_of(k): k for k in (base64.b64decode(text) for text in data["keys"])}
        primary = str(data["primary"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigurationError(
            f"The master key file {path} cannot be read or is damaged. Restore it from your "
            "backup; segbridge will not overwrite it."
        ) from None
    for key in keys.values():
        _check_length(key)
    if primary not in keys:
        raise ConfigurationError(f"The master key file {path} names a primary key it lacks.")
    return KeyRing(keys=keys, primary=primary)


def check_private(path: Path) -> None:
    """Refuse a key file whose mode lets group or others read or write it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"The master key file {path} has mode {mode:04o}: other users of this machine can "
            f"read or change it. Make it private to segbridge's user with `chmod 600 {path}`, "
            "then start segbridge again."
        )


def write_key_ring(path: Path, ring: KeyRing) -> None:
    """Write the key ring atomically with mode 0600 (a new file, so readers see the change)."""
    data = {
        "keys": [base64.b64encode(k).decode("ascii") for k in ring.keys.values()],
        "primary": ring.primary,
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, PRIVATE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigurationError(
            f"segbridge cannot write the master key file {path} ({exc.strerror}). Give "
            f"segbridge's user write access to {path.parent}; the key file was not changed."
        ) from None

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from segbridge.core.errors import ConfigurationError
from segbridge.core.secrets import Secret
from segbridge.core.vault import (
    KeyRing,
    Vault,
    VaultError,
    associated_data,
    decode_key,
    key_id_of,
    read_key_ring,
    write_key_ring,
)

WRITE_KEY = "wk_3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"


def vault() -> Vault:
    return Vault(KeyRing.single(os.urandom(32)))


def test_encrypt_then_decrypt_gives_the_secret_back_and_hides_it() -> None:
    v = vault()
    aad = associated_data("acc_1", "con_1", "write_key")
    ciphertext = v.encrypt(Secret(WRITE_KEY), aad)
    assert WRITE_KEY not in ciphertext
    assert v.decrypt(ciphertext, aad).reveal() == WRITE_KEY


def test_every_encryption_uses_a_fresh_nonce() -> None:
    v = vault()
    aad = associated_data("acc_1", "con_1", "write_key")
    assert v.encrypt(Secret(WRITE_KEY), aad) != v.encrypt(Secret(WRITE_KEY), aad)


@pytest.mark.parametrize("moved_to", [("acc_2", "con_1", "write_key"),
                                      ("acc_1", "con_2", "write_key"),
                                      ("acc_1", "con_1", "password")])
def test_a_ciphertext_copied_to_another_place_fails_to_decrypt(
    moved_to: tuple[str, str, str],
) -> None:
    v = vault()
    ciphertext = v.encrypt(Secret(WRITE_KEY), associated_data("acc_1", "con_1", "write_key"))
    with pytest.raises(VaultError, match="copied from another connection"):
        v.decrypt(ciphertext, associated_data(*moved_to))


def test_a_tampered_ciphertext_fails_to_decrypt() -> None:
    v = vault()
    aad = associated_data("acc_1", "con_1", "write_key")
    version, key_id, body = v.encrypt(Secret(WRITE_KEY), aad).split(".")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 1
    tampered = f"{version}.{key_id}.{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    with pytest.raises(VaultError):
        v.decrypt(tampered, aad)


def test_the_ciphertext_names_its_key_and_another_key_cannot_read_it() -> None:
    key = os.urandom(32)
    v = Vault(KeyRing.single(key))
    aad = associated_data("acc_1", "con_1", "write_key")
    ciphertext = v.encrypt(Secret(WRITE_KEY), aad)
    assert Vault.key_id_in(ciphertext) == key_id_of(key)
    with pytest.raises(VaultError, match="not in the key ring"):
        vault().decrypt(ciphertext, aad)


def test_a_rotated_ring_reads_old_and_writes_new() -> None:
    old = Vault(KeyRing.single(os.urandom(32)))
    aad = associated_data("acc_1", "con_1", "write_key")
    ciphertext = old.encrypt(Secret(WRITE_KEY), aad)
    new = Vault(old.ring.with_new_primary(os.urandom(32)))
    assert new.decrypt(ciphertext, aad).reveal() == WRITE_KEY
    assert Vault.key_id_in(new.encrypt(Secret(WRITE_KEY), aad)) == new.primary_key_id
    assert new.primary_key_id != old.primary_key_id


def test_key_ring_file_is_written_with_mode_0600_and_read_back(tmp_path: Path) -> None:
    ring = KeyRing.single(os.urandom(32)).with_new_primary(os.urandom(32))
    path = tmp_path / "master.key"
    write_key_ring(path, ring)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_ring(path) == ring


def test_a_damaged_key_file_is_a_clear_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text("not json")
    with pytest.raises(ConfigurationError, match="cannot be read or is damaged"):
        read_key_ring(path)


@pytest.mark.parametrize("text", ["not base64!!", base64.b64encode(b"short").decode()])
def test_a_bad_master_key_is_refused_with_how_to_make_one(text: str) -> None:
    with pytest.raises(ConfigurationError, match="base64"):
        decode_key(text)

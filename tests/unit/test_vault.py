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
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="cannot be read or is damaged"):
        read_key_ring(path)


@pytest.mark.parametrize("text", ["not base64!!", base64.b64encode(b"short").decode()])
def test_a_bad_master_key_is_refused_with_how_to_make_one(text: str) -> None:
    with pytest.raises(ConfigurationError, match="base64"):
        decode_key(text)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660], ids=oct)
def test_a_key_file_that_others_may_read_or_write_is_refused_with_how_to_fix_it(
    tmp_path: Path, mode: int,
) -> None:
    path = tmp_path / "master.key"
    write_key_ring(path, KeyRing.single(os.urandom(32)))
    path.chmod(mode)
    with pytest.raises(ConfigurationError, match=f"has mode {mode:04o}") as refused:
        read_key_ring(path)
    assert f"chmod 600 {path}" in refused.value.message


def rotated_file(path: Path, ring: KeyRing) -> KeyRing:
    rotated = ring.with_new_primary(os.urandom(32))
    write_key_ring(path, rotated)
    return rotated


def test_a_vault_following_its_key_file_encrypts_with_the_new_primary_once_the_file_changes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "master.key"
    ring = KeyRing.single(os.urandom(32))
    write_key_ring(path, ring)
    running = Vault(read_key_ring(path), key_file=path)
    aad = associated_data("acc_1", "con_1", "write_key")
    assert Vault.key_id_in(running.encrypt(Secret(WRITE_KEY), aad)) == ring.primary
    rotated = rotated_file(path, ring)
    ciphertext = running.encrypt(Secret(WRITE_KEY), aad)
    assert Vault.key_id_in(ciphertext) == rotated.primary
    assert running.primary_key_id == rotated.primary
    assert running.decrypt(ciphertext, aad).reveal() == WRITE_KEY


def test_a_vault_reads_its_key_file_again_when_a_secret_names_a_key_it_lacks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "master.key"
    ring = KeyRing.single(os.urandom(32))
    write_key_ring(path, ring)
    running = Vault(read_key_ring(path), key_file=path)
    elsewhere = Vault(rotated_file(path, ring))  # another process rotated and re-encrypted
    aad = associated_data("acc_1", "con_1", "write_key")
    assert running.decrypt(elsewhere.encrypt(Secret(WRITE_KEY), aad), aad).reveal() == WRITE_KEY


def test_a_vault_does_not_read_an_unchanged_key_file_again(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    write_key_ring(path, KeyRing.single(os.urandom(32)))
    running = Vault(read_key_ring(path), key_file=path)
    ring = running.ring
    running.encrypt(Secret(WRITE_KEY), associated_data("acc_1", "con_1", "write_key"))
    assert running.refresh() is ring


def test_a_key_file_made_readable_by_others_while_running_stops_encryption(
    tmp_path: Path,
) -> None:
    path = tmp_path / "master.key"
    ring = KeyRing.single(os.urandom(32))
    write_key_ring(path, ring)
    running = Vault(read_key_ring(path), key_file=path)
    rotated_file(path, ring)
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        running.encrypt(Secret(WRITE_KEY), associated_data("acc_1", "con_1", "write_key"))


def test_a_vault_from_the_environment_keeps_its_key(tmp_path: Path) -> None:
    key = os.urandom(32)
    running = Vault(KeyRing.single(key))
    assert running.key_file is None
    assert running.reload().primary == key_id_of(key)


def test_pruning_a_ring_never_removes_its_primary_key() -> None:
    ring = KeyRing.single(os.urandom(32)).with_new_primary(os.urandom(32))
    assert ring.without(set(ring.keys)).keys == {ring.primary: ring.keys[ring.primary]}
    assert ring.retired == [kid for kid in ring.keys if kid != ring.primary]


def test_a_secret_under_a_key_the_file_lacks_says_to_copy_the_rotated_key_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "master.key"
    write_key_ring(path, KeyRing.single(os.urandom(32)))
    running = Vault(read_key_ring(path), key_file=path)
    elsewhere = vault()  # rotated on another machine; this machine's file was not copied
    aad = associated_data("acc_1", "con_1", "write_key")
    with pytest.raises(VaultError, match=f"not in the key ring file {path}") as refused:
        running.decrypt(elsewhere.encrypt(Secret(WRITE_KEY), aad), aad)
    assert "copy its key file here" in refused.value.message


def test_a_key_file_that_cannot_be_written_is_a_clear_configuration_error(
    tmp_path: Path,
) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    with pytest.raises(ConfigurationError, match="cannot write the master key file"):
        write_key_ring(not_a_folder / "master.key", KeyRing.single(os.urandom(32)))

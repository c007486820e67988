"""Master keys: generated on first start (0600), checked at every start, rotated and pruned
without losing a secret while servers use them."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time
from functools import partial
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from segbridge.cli.main import cli
from segbridge.connections.secret_store import load_secrets, store_secret
from segbridge.core.errors import ConfigurationError
from segbridge.core.secrets import Secret
from segbridge.core.settings import Settings, load_settings
from segbridge.core.vault import KeyRing, Vault, associated_data, read_key_ring
from segbridge.runtime import Runtime, build_runtime, cli_principal
from segbridge.storage.models import Connection, ConnectionSecret
from tests.integration.conftest import Server


def test_first_start_generates_a_key_file_with_mode_0600(settings: Settings) -> None:
    runtime = build_runtime(settings)
    runtime.close()
    path = settings.resolved_master_key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(json.loads(path.read_text())["keys"]) == 1


def saved_connection(server: Server, source: dict[str, Any]) -> str:
    return str(server.new_connection("Prod", source["write_key"])["id"])


def test_a_missing_key_file_stops_start_up_and_nothing_is_overwritten(
    server: Server, source: dict[str, Any],
) -> None:
    saved_connection(server, source)
    settings = server.runtime.settings
    path = settings.resolved_master_key_file
    path.rename(path.with_suffix(".bak"))
    with pytest.raises(ConfigurationError, match="is missing, but this database holds secrets"):
        build_runtime(settings)
    assert not path.exists()


def test_a_wrong_key_stops_start_up(server: Server, source: dict[str, Any]) -> None:
    saved_connection(server, source)
    wrong = base64.b64encode(os.urandom(32)).decode()
    settings = load_settings(home=server.runtime.settings.home, master_key=wrong,
                             database_url=server.runtime.settings.resolved_database_url)
    with pytest.raises(ConfigurationError, match="does not match this database"):
        build_runtime(settings)


def cli_env(settings: Settings) -> dict[str, str]:
    return {"SEGBRIDGE_HOME": str(settings.home),
            "SEGBRIDGE_DATABASE_URL": settings.resolved_database_url}


def keys_command(settings: Settings, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["keys", *args], env=cli_env(settings), obj={})
    assert result.exit_code == 0, result.output
    return result


def ring_file(settings: Settings) -> dict[str, Any]:
    ring: dict[str, Any] = json.loads(settings.resolved_master_key_file.read_text())
    return ring


def key_ids_of_secrets(runtime: Runtime) -> set[str]:
    with runtime.db.session() as session:
        return set(session.scalars(select(ConnectionSecret.key_id)))


def test_rotation_reencrypts_every_secret_and_keeps_the_old_key_retired_in_the_ring(
    server: Server, source: dict[str, Any],
) -> None:
    connection_id = saved_connection(server, source)
    settings = server.runtime.settings
    old_key_id = server.runtime.vault.primary_key_id
    result = keys_command(settings, "rotate")
    assert "Re-encrypted 1 secret(s)" in result.output
    assert f"Retired key {old_key_id} stays in the key ring for decryption only" in result.output
    ring = ring_file(settings)
    assert len(ring["keys"]) == 2 and ring["primary"] != old_key_id
    assert f"key {ring['primary']} is now primary" in result.output
    fresh = build_runtime(settings)
    try:
        assert fresh.vault.primary_key_id == ring["primary"]
        assert key_ids_of_secrets(fresh) == {ring["primary"]}
        result_ping = fresh.connections.test_saved(cli_principal(fresh), connection_id)
        assert result_ping.ok
        assert result_ping.checks[0].outcome == "recognised"
    finally:
        fresh.close()


def test_a_running_server_encrypts_with_the_new_key_after_a_rotation_by_the_cli(
    server: Server, source: dict[str, Any],
) -> None:
    before = saved_connection(server, source)
    settings = server.runtime.settings
    keys_command(settings, "rotate")
    primary = ring_file(settings)["primary"]
    after = saved_connection_named(server, source, "After rotation")
    assert key_ids_of_secrets(server.runtime) == {primary}
    for connection_id in (before, after):
        tested = server.api.post(f"/api/v1/connections/{connection_id}/test")
        assert tested.status_code == 200 and tested.json()["ok"], tested.text
    build_runtime(settings).close()  # a restart accepts the database


def saved_connection_named(server: Server, source: dict[str, Any], name: str) -> str:
    return str(server.new_connection(name, source["write_key"])["id"])


def test_a_second_rotation_removes_the_key_retired_by_the_first_and_keeps_the_last(
    server: Server, source: dict[str, Any],
) -> None:
    saved_connection(server, source)
    settings = server.runtime.settings
    first = server.runtime.vault.primary_key_id
    keys_command(settings, "rotate")
    second = ring_file(settings)["primary"]
    result = keys_command(settings, "rotate")
    third = ring_file(settings)["primary"]
    assert f"Removed from the key ring (no secret uses them): {first}." in result.output
    assert set(ring_ids(settings)) == {second, third}


def ring_ids(settings: Settings) -> list[str]:
    return list(read_key_ring(settings.resolved_master_key_file).keys)


def test_prune_reencrypts_a_straggler_before_removing_its_retired_key(
    server: Server, source: dict[str, Any],
) -> None:
    connection_id = saved_connection(server, source)
    settings = server.runtime.settings
    old_ring = read_key_ring(settings.resolved_master_key_file)
    keys_command(settings, "rotate")
    write_with(server.runtime, old_ring, connection_id)  # a process that missed the rotation
    assert old_ring.primary in key_ids_of_secrets(server.runtime)
    status = keys_command(settings, "status", "--json")
    states = {s["key_id"]: s for s in json.loads(status.output)}
    assert states[old_ring.primary]["state"] == "retired"
    assert states[old_ring.primary]["secrets"] == 1
    assert source["write_key"] not in status.output
    ring_text = settings.resolved_master_key_file.read_text()
    assert not any(key in status.output for key in json.loads(ring_text)["keys"])

    pruned = keys_command(settings, "prune")
    assert "Re-encrypted 1 secret(s) still on a retired key" in pruned.output
    assert f"Removed from the key ring (no secret uses them): {old_ring.primary}." in pruned.output
    assert ring_ids(settings) == [ring_file(settings)["primary"]]
    fresh = build_runtime(settings)
    try:
        assert fresh.connections.test_saved(cli_principal(fresh), connection_id).ok
    finally:
        fresh.close()


def write_with(runtime: Runtime, ring: KeyRing, connection_id: str) -> None:
    with runtime.db.session() as session:
        connection = session.get_one(Connection, connection_id)
        row = session.get_one(ConnectionSecret, (connection_id, "write_key"))
        aad = associated_data(connection.account_id, connection_id, "write_key")
        row.ciphertext = ring.seal(runtime.vault.decrypt(row.ciphertext, aad), aad)
        row.key_id = ring.primary


def test_a_writer_that_missed_the_rotation_encrypts_with_the_new_key(
    server: Server, source: dict[str, Any],
) -> None:
    connection_id = saved_connection(server, source)
    settings = server.runtime.settings
    path = settings.resolved_master_key_file
    old_ring = read_key_ring(path)
    keys_command(settings, "rotate")
    # a process that checked the key file a moment before the rotation replaced it
    stale = Vault(old_ring, key_file=path)
    with server.runtime.db.session() as session:
        connection = session.get_one(Connection, connection_id)
        store_secret(session, stale, connection, "write_key", Secret(source["write_key"]))
    assert key_ids_of_secrets(server.runtime) == {ring_file(settings)["primary"]}


def test_a_secret_written_with_the_old_key_while_rotation_runs_is_reencrypted_not_lost(
    server: Server, source: dict[str, Any],
) -> None:
    connection_id = saved_connection(server, source)
    settings = server.runtime.settings
    changed_key = source["write_key"] + "x"
    old_primary = server.runtime.vault.primary_key_id
    written, outcomes = threading.Event(), []

    def writer() -> None:  # a server saving a new write key twice in one open transaction
        try:
            with server.runtime.db.session() as session:
                connection = session.get_one(Connection, connection_id)
                save = partial(store_secret, session, server.runtime.vault, connection)
                save("write_key", Secret(source["write_key"]))
                written.set()
                wait_for_new_primary(settings, old_primary)
                time.sleep(0.5)  # the rotation now waits to retire the key this writer holds
                save("write_key", Secret(changed_key))
            outcomes.append("saved")
        except Exception as exc:
            outcomes.append(repr(exc))

    def rotation() -> None:
        outcomes.append(keys_command(settings, "rotate").output)

    threads = [threading.Thread(target=writer), threading.Thread(target=rotation)]
    threads[0].start()
    assert written.wait(10)
    threads[1].start()
    for thread in threads:
        thread.join(60)
    assert outcomes[0] == "saved"  # the rotation waited for the writer
    assert "Re-encrypted 1 secret(s)" in outcomes[1]  # the one the writer saved
    primary = ring_file(settings)["primary"]
    assert key_ids_of_secrets(server.runtime) == {primary}
    fresh = build_runtime(settings)
    try:
        with fresh.db.session() as session:
            connection = session.get_one(Connection, connection_id)
            secrets = load_secrets(session, fresh.vault, connection)
        assert secrets["write_key"].reveal() == changed_key
    finally:
        fresh.close()


def wait_for_new_primary(settings: Settings, old_primary: str) -> None:
    deadline = time.monotonic() + 30
    while ring_file(settings)["primary"] == old_primary:
        assert time.monotonic() < deadline, "the rotation did not write the key file"
        time.sleep(0.02)


def test_a_key_file_readable_by_others_stops_start_up_with_how_to_fix_it(
    settings: Settings,
) -> None:
    build_runtime(settings).close()
    path = settings.resolved_master_key_file
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="has mode 0644") as refused:
        build_runtime(settings)
    assert f"chmod 600 {path}" in refused.value.message
    result = CliRunner().invoke(cli, ["connections", "list"], env=cli_env(settings), obj={})
    assert result.exit_code == 1
    assert f"chmod 600 {path}" in result.output


def test_rotation_is_refused_for_a_key_from_the_environment(settings: Settings) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    env = {**cli_env(settings), "SEGBRIDGE_MASTER_KEY": key}
    result = CliRunner().invoke(cli, ["keys", "rotate"], env=env, obj={})
    assert result.exit_code == 1
    assert "takes its key from SEGBRIDGE_MASTER_KEY" in result.output

"""Master keys: generated on first start (0600), checked at every start, rotated."""

from __future__ import annotations

import base64
import json
import os
import stat
from typing import Any

import pytest
from click.testing import CliRunner

from segbridge.cli.main import cli
from segbridge.core.errors import ConfigurationError
from segbridge.core.settings import Settings, load_settings
from segbridge.runtime import build_runtime, cli_principal
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


def test_rotation_reencrypts_every_secret_and_retires_the_old_key(
    server: Server, source: dict[str, Any],
) -> None:
    connection_id = saved_connection(server, source)
    settings = server.runtime.settings
    old_key_id = server.runtime.vault.primary_key_id
    env = {"SEGBRIDGE_HOME": str(settings.home),
           "SEGBRIDGE_DATABASE_URL": settings.resolved_database_url}
    result = CliRunner().invoke(cli, ["keys", "rotate"], env=env, obj={})
    assert result.exit_code == 0, result.output
    assert "1 secret(s) re-encrypted" in result.output
    ring = json.loads(settings.resolved_master_key_file.read_text())
    assert len(ring["keys"]) == 1 and ring["primary"] != old_key_id
    fresh = build_runtime(settings)
    try:
        assert fresh.vault.primary_key_id == ring["primary"]
        result_ping = fresh.connections.test_saved(cli_principal(fresh), connection_id)
        assert result_ping.ok
        assert result_ping.checks[0].outcome == "recognised"
    finally:
        fresh.close()

"""The write key never leaves the vault as text: API responses, CLI output, logs, database."""

from __future__ import annotations

import base64
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from segbridge.cli.main import cli
from tests.integration.conftest import Server


def database_bytes(server: Server) -> bytes:
    url = server.runtime.settings.resolved_database_url
    server.runtime.db.dispose()
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    parsed = make_url(url)
    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-d", str(parsed.database)],
        check=True, capture_output=True, timeout=60)
    assert b"connection_secrets" in dump.stdout  # the dump really holds the tables
    return dump.stdout


def test_the_write_key_is_nowhere_but_in_the_vault(
    server: Server, source: dict[str, Any], caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = source["write_key"]
    seen: list[str] = []
    api = server.api

    def keep(response: Any) -> Any:
        seen.append(response.text)
        return response

    created = keep(api.post("/api/v1/connections", json={
        "name": "Leak check", "application": "segment",
        "settings": server.segment_settings(key)})).json()
    cid = created["id"]
    keep(api.put(f"/api/v1/connections/{cid}", json={
        "name": "Leak check 2", "application": "segment", "settings": server.segment_settings(key),
        "concurrency_level": 3}))
    keep(api.put(f"/api/v1/connections/{cid}", json={
        "name": "Leak check 2", "application": "segment",
        "settings": {"write_key": key, "endpoint": f"{server.base_url}/nothing"}}))
    keep(api.put(f"/api/v1/connections/{cid}", json={
        "name": "", "application": "segment", "settings": {"write_key": key, "region": "mars"}}))
    keep(api.post(f"/api/v1/connections/{cid}/test"))
    keep(api.post("/api/v1/connections/test", json={
        "application": "segment", "settings": server.segment_settings(key)}))
    for path in ["/api/v1/connections", f"/api/v1/connections/{cid}",
                 f"/api/v1/connections/{cid}/audit", "/api/v1/openapi.json"]:
        keep(api.get(path))

    settings = server.runtime.settings
    env = {"SEGBRIDGE_HOME": str(settings.home),
           "SEGBRIDGE_DATABASE_URL": settings.resolved_database_url}
    runner = CliRunner()
    for args, stdin in [(["connections", "list"], None), (["connections", "list", "--json"], None),
                        (["connections", "show", cid], None),
                        (["connections", "show", cid, "--json"], None),
                        (["connections", "test", cid], None),
                        (["connections", "create", "--name", "Leak CLI", "--endpoint",
                          server.sandbox_url, "--json"], key + "\n"),
                        (["connections", "update", cid, "--json"], key + "\n"),
                        (["keys", "rotate"], None)]:
        result = runner.invoke(cli, args, env=env, input=stdin, obj={})
        assert result.exit_code == 0, result.output
        seen.append(result.output)

    logged = {record.name for record in caplog.records}
    assert "segbridge.connections.service" in logged  # what saved and tested the key logged
    seen.extend(record.getMessage() for record in caplog.records)
    seen.append(caplog.text)
    everything = "\n".join(seen).encode() + database_bytes(server)
    basic = base64.b64encode(f"{key}:".encode())
    assert key.encode() not in everything
    assert basic not in everything

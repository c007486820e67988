"""Key rotation under a real `segbridge serve` process that keeps creating and testing
connections: nothing is lost, the restarted server and every CLI command start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from segbridge.core.settings import Settings
from segbridge.runtime import build_runtime, first_start
from tests.integration.conftest import admin_token
from tests.support.servers import unused_port

ROTATIONS = 2


def cli_env(settings: Settings) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")}
    return {**inherited, "SEGBRIDGE_HOME": str(settings.home),
            "SEGBRIDGE_DATABASE_URL": settings.resolved_database_url}


def segbridge(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "segbridge.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@contextmanager
def serving(env: dict[str, str], log: Path, port: int) -> Iterator[str]:
    """A `segbridge serve` process on ``port``; stopped with SIGTERM afterwards."""
    with log.open("a") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "segbridge.cli", "serve", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(process, base_url, log)
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_up(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"segbridge serve exited:\n{log.read_text()}"
        try:
            if httpx.get(f"{base_url}/healthz", trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"segbridge serve did not start:\n{log.read_text()}"
        time.sleep(0.1)


class ConnectionMaker(threading.Thread):
    """Keeps creating connections to the mounted local Segment and testing them."""

    def __init__(self, api: httpx.Client, endpoint: str, write_key: str) -> None:
        super().__init__(daemon=True)
        self.api, self.endpoint, self.write_key = api, endpoint, write_key
        self.made: list[str] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.make_and_test(len(self.made) + len(self.failures))
            except Exception as exc:  # every failure is reported by the test
                self.failures.append(repr(exc))

    def make_and_test(self, n: int) -> None:
        created = self.api.post("/api/v1/connections", json={
            "name": f"Rotation {n}", "application": "segment",
            "settings": {"write_key": self.write_key, "endpoint": self.endpoint}})
        if created.status_code != 201:
            self.failures.append(f"create {n}: {created.status_code} {created.text}")
            return
        connection_id = str(created.json()["id"])
        self.made.append(connection_id)
        tested = self.api.post(f"/api/v1/connections/{connection_id}/test")
        if tested.status_code != 200 or not tested.json()["ok"]:
            self.failures.append(f"test {n}: {tested.status_code} {tested.text}")

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.made) < count and not self.failures:
            assert time.monotonic() < deadline, "no connection was created for 60 s"
            time.sleep(0.05)


def signed_in(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                        timeout=30, trust_env=False)


def test_rotation_under_a_running_server_loses_no_secret(
    settings: Settings, tmp_path: Path,
) -> None:
    runtime = build_runtime(settings)
    first_start(runtime)
    token = admin_token(runtime)
    runtime.close()
    env, log, port = cli_env(settings), tmp_path / "serve.log", unused_port()

    with serving(env, log, port) as base_url, signed_in(base_url, token) as api:
        source = api.post("/sandbox/api/sources", json={"name": "Rotation"})
        assert source.status_code in (200, 201), source.text
        maker = ConnectionMaker(api, f"{base_url}/sandbox", source.json()["write_key"])
        maker.start()
        try:
            maker.wait_for(2)
            for _ in range(ROTATIONS):
                rotated = segbridge(env, "keys", "rotate")
                assert rotated.returncode == 0, rotated.stderr
                maker.wait_for(len(maker.made) + 2)  # the server goes on after the rotation
        finally:
            maker.stop.set()
            maker.join(60)
        assert maker.failures == []

    with serving(env, log, port) as base_url, signed_in(base_url, token) as api:  # a restart
        for connection_id in maker.made:
            tested = api.post(f"/api/v1/connections/{connection_id}/test")
            assert tested.status_code == 200, tested.text
            assert tested.json()["ok"], tested.text

    listed = segbridge(env, "connections", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {c["id"] for c in json.loads(listed.stdout)} >= set(maker.made)
    status = segbridge(env, "keys", "status")
    assert status.returncode == 0, status.stderr
    assert "primary" in status.stdout

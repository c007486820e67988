"""The server's log holds no write key and no one-time login token.

A real ``segbridge serve`` process, its standard output and error captured to files: its
access log once showed ``GET /sandbox/v1/projects/<write key>/settings`` for every connection
test against the local Segment, and ``GET /login?token=...`` for every login link opened.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from segbridge.core.log_redaction import mask_path, scrub
from segbridge.runtime import ADMIN_EMAIL
from tests.support.servers import unused_port


@dataclass
class ServeProcess:
    base_url: str
    env: dict[str, str]
    log: Path

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "segbridge.cli", *args], env=self.env, capture_output=True,
            text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")
        try:
            if httpx.get(f"{url}/healthz", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("segbridge serve did not start:\n" + log.read_text(errors="replace"))


@pytest.fixture
def serve_process(tmp_path: Path, database_url: str) -> Iterator[ServeProcess]:
    port = unused_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SEGBRIDGE_HOME": str(tmp_path / "home"),
           "SEGBRIDGE_DATABASE_URL": database_url, "SEGBRIDGE_PORT": str(port),
           "SEGBRIDGE_PUBLIC_URL": base_url, "SEGBRIDGE_LOG_LEVEL": "DEBUG",
           "NO_PROXY": "*"}
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(  # stdout and stderr: the whole log, in order
            [sys.executable, "-m", "segbridge.cli", "serve"], env=env, stdout=sink,
            stderr=subprocess.STDOUT)
    try:
        _wait_until_up(base_url, process, log)
        yield ServeProcess(base_url, env, log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_server_log_holds_no_write_key_and_no_login_token(
    serve_process: ServeProcess,
) -> None:
    token = serve_process.cli("users", "token", ADMIN_EMAIL, "--name", "log leak test")
    link = serve_process.cli("users", "login-link", ADMIN_EMAIL)
    login_token = link.rsplit("token=", 1)[1]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=serve_process.base_url, headers=headers, timeout=30,
                      trust_env=False) as api:
        source = api.post("/sandbox/api/sources", json={"name": "Leak check"}).json()
        key = source["write_key"]
        settings = {"write_key": key, "endpoint": f"{serve_process.base_url}/sandbox"}
        created = api.post("/api/v1/connections", json={
            "name": "Leak check", "application": "segment", "settings": settings})
        assert created.status_code == 201, created.text
        for _ in range(3):
            tested = api.post(f"/api/v1/connections/{created.json()['id']}/test")
            assert tested.status_code == 200, tested.text
        unsaved = api.post("/api/v1/connections/test",
                           json={"application": "segment", "settings": settings})
        assert unsaved.status_code == 200, unsaved.text
        basic = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
        tracked = api.post("/sandbox/v1/track", headers=basic,
                           json={"userId": "u1", "event": "Leak checked"})
        assert tracked.status_code == 200
        library = api.get(f"/sandbox/analytics.js/v1/{key}/analytics.min.js")
        assert library.status_code == 200  # the key in a path: analytics.js, as from a page
    with httpx.Client(trust_env=False) as browser:
        opened = browser.get(link, follow_redirects=False)
    assert opened.status_code in (302, 303), opened.text
    time.sleep(0.5)  # the access log line is written after the answer

    log = serve_process.log.read_text(errors="replace")
    assert key not in log
    assert base64.b64encode(f"{key}:".encode()).decode() not in log
    assert login_token not in log
    assert token not in log
    assert '"GET /sandbox/v1/projects/****/settings HTTP/1.1" 200' in log  # lines were logged
    assert '"GET /login HTTP/1.1" 30' in log
    assert '"GET /sandbox/analytics.js/v1/****/analytics.min.js HTTP/1.1" 200' in log


def test_a_client_gone_before_its_form_was_read_is_no_error_in_the_log(
    serve_process: ServeProcess,
) -> None:
    """A browser aborting a request it replaced (htmx), or anyone closing the connection in
    the middle of a form's upload, is not a server error: no traceback, no 500 in the log
    (an anonymous client could fill the log with two tracebacks a request)."""
    host, port = serve_process.base_url.removeprefix("http://").split(":")
    for path in ("/login", "/account/tokens"):
        with socket.create_connection((host, int(port)), timeout=10) as client:
            client.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                           "Content-Type: application/x-www-form-urlencoded\r\n"
                           "Content-Length: 100000\r\n\r\nemail=a".encode())
            time.sleep(0.3)
    with httpx.Client(base_url=serve_process.base_url, trust_env=False) as browser:
        assert browser.get("/login").status_code == 200  # still serving
    time.sleep(0.5)

    log = serve_process.log.read_text(errors="replace")
    assert "ClientDisconnect" not in log
    assert "Traceback" not in log
    assert "ERROR" not in log


def test_access_paths_lose_keys_and_query_strings() -> None:
    assert mask_path("/sandbox/v1/projects/abcdef0123456789/settings") == (
        "/sandbox/v1/projects/****/settings")
    assert mask_path("/login?token=secret-one-time&next=/") == "/login"
    assert mask_path("/sandbox/analytics.js/v1/abcdef0123456789/analytics.min.js") == (
        "/sandbox/analytics.js/v1/****/analytics.min.js")
    assert mask_path("/sandbox/sources/src_1/debugger?q=segbridge-test-1") == (
        "/sandbox/sources/src_1/debugger")
    line = scrub("GET https://x/v1/projects/k3y/settings?token=t0ken Authorization: Basic "
                 "a2V5a2V5a2V5Og==")
    assert "k3y" not in line
    assert "t0ken" not in line
    assert "a2V5a2V5a2V5Og==" not in line

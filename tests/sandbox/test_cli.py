"""``segbridge sandbox`` (here ``python -m segbridge.sandbox``) runs the receiver alone."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from segbridge.sandbox import sandbox_command

from .conftest import basic

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _post_when_up(process: subprocess.Popen[str], url: str, write_key: str) -> httpx.Response:
    deadline = time.monotonic() + 10
    while True:
        try:
            return httpx.post(url, json={"userId": "u", "event": "E"}, headers=basic(write_key))
        except httpx.ConnectError:
            assert process.poll() is None, "the receiver exited"
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.05)


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--state",
        "--archive",
        "--strict",
        "--admin-token-file",
        "--fault-500",
        "--fault-429",
        "--retry-after",
        "--latency-ms",
        "--drop",
        "--down-seconds",
        "--seed",
    ):
        assert option in result.output


def test_fault_shares_over_one_are_refused() -> None:
    result = CliRunner().invoke(sandbox_command, ["--fault-500", "0.7", "--drop", "0.7"])
    assert result.exit_code == 2
    assert "shares must add up to at most 1" in result.output


def test_runs_alone_with_state_token_file_and_faults(tmp_path: Path) -> None:
    port = _free_port()
    token_file = tmp_path / "token"
    command = [
        sys.executable,
        "-u",
        "-m",
        "segbridge.sandbox",
        "--port",
        str(port),
        "--state",
        str(tmp_path / "state.sqlite"),
        "--admin-token-file",
        str(token_file),
        "--fault-429",
        "1",
        "--retry-after",
        "2",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:  # its pipe is closed on the way out
        _check_the_running_receiver(process, token_file, port)
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it caught


def _check_the_running_receiver(
    process: subprocess.Popen[str], token_file: Path, port: int
) -> None:
    try:
        output = ""
        assert process.stdout is not None
        while "Admin token:" not in output:
            line = process.stdout.readline()
            assert line, output
            output += line
        write_key = re.search(r"write key: (\w+)", output)
        assert write_key and len(write_key.group(1)) == 32
        assert "'My first source'" in output
        token = token_file.read_text().strip()
        assert f"Admin token: {token}" in output
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        url = f"http://127.0.0.1:{port}"
        response = _post_when_up(process, f"{url}/v1/track", write_key.group(1))
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2"
        faults = httpx.get(f"{url}/api/faults", headers={"Authorization": f"Bearer {token}"}).json()
        assert faults["error_429"] == 1.0
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)

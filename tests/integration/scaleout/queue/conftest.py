"""Scale-out against real parts: segbridge's PostgreSQL (always: the job queue needs it), a
server that only enqueues (the tests' server runs no workers), real ``segbridge worker``
processes, and a local Segment receiver with an archive and fault injection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from segbridge.core.settings import Settings, load_settings
from tests.integration.conftest import Server
from tests.integration.flows.conftest import receiver, shop  # noqa: F401  (fixtures)
from tests.support.databases import postgres_database

LEASE = 5  # seconds: a dead worker's run is taken over within a take-over tick (1 s) or two


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Always PostgreSQL: a migrated database of the test's own."""
    with postgres_database(template=request.getfixturevalue("postgres_template")) as url:
        yield url


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(tmp_path: Path, database_url: str, data: Path) -> Settings:
    return load_settings(home=tmp_path / "home", database_url=database_url,
                         http_timeout_seconds=5.0, run_lease_seconds=LEASE,
                         file_roots=str(data))


class Workers:
    """``segbridge worker`` processes on the test's install (its home, key ring, database)."""

    def __init__(self, server: Server, folder: Path) -> None:
        settings = server.runtime.settings
        self.env = {**os.environ, "SEGBRIDGE_HOME": str(settings.home),
                    "SEGBRIDGE_DATABASE_URL": settings.resolved_database_url,
                    "SEGBRIDGE_FILE_ROOTS": settings.file_roots,
                    "SEGBRIDGE_RUN_LEASE_SECONDS": str(LEASE), "PYTHONUNBUFFERED": "1"}
        self.folder = folder
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        with (self.folder / f"worker-{len(self.started)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "segbridge.cli", "worker", *args], env=self.env,
                stdout=log, stderr=subprocess.STDOUT)
        self.started.append(process)
        return process

    def output(self, process: subprocess.Popen[bytes]) -> str:
        return (self.folder / f"worker-{self.started.index(process)}.log").read_text()

    def wait_ready(self, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Starting worker on queues runs" in self.output(process):
                return
            assert process.poll() is None, self.output(process)
            time.sleep(0.1)
        raise AssertionError(f"the worker did not start: {self.output(process)}")

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture
def workers(server: Server, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(server, tmp_path)
    yield started
    started.stop_all()

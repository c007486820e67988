"""Fixtures for the sandbox receiver: real uvicorn servers on loopback, real HTTP clients."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from segbridge.sandbox import SandboxConfig, SandboxState, create_sandbox_app
from segbridge.sandbox.serving import ShutdownAwareServer

ADMIN_TOKEN = "test-admin-token-0123456789"


def basic(write_key: str) -> dict[str, str]:
    """HTTP Basic with the write key as user name and an empty password (``key:``)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


@contextmanager
def serve(app: Starlette, **options: Any) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server on a free loopback port; yield its base URL.
    The server ends the receiver's live streams as it shuts down, as ``segbridge sandbox``'s.

    ``options`` go to ``uvicorn.Config``; ``timeout_graceful_shutdown`` is 1 s unless given
    (``None``: uvicorn waits for open connections without limit, as ``segbridge serve`` does).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options.setdefault("timeout_graceful_shutdown", 1)
    options.setdefault("lifespan", "on")
    config = uvicorn.Config(app, log_level="warning", http="httptools", **options)
    # the receiver alone, or mounted in segbridge (its LocalSegment)
    receiver = getattr(app.state, "sandbox", None) or getattr(app.state, "local_segment", None)
    server = ShutdownAwareServer(config, receiver.end_streams if receiver is not None else None)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class Sandbox:
    """A running receiver: its URL, its state, and an admin client."""

    url: str
    app: Starlette
    admin: httpx.Client
    http: httpx.Client

    @property
    def state(self) -> SandboxState:
        state: SandboxState = self.app.state.sandbox
        return state

    def new_source(self, name: str | None = None) -> dict[str, Any]:
        response = self.admin.post("/api/sources", json={"name": name or _unique_name()})
        assert response.status_code == 201, response.text
        source: dict[str, Any] = response.json()
        return source

    def events(self, source_id: str, **params: Any) -> list[dict[str, Any]]:
        response = self.admin.get(f"/api/sources/{source_id}/events", params=params)
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    def stats(self, source_id: str) -> dict[str, Any]:
        response = self.admin.get(f"/api/sources/{source_id}/stats")
        assert response.status_code == 200, response.text
        stats: dict[str, Any] = response.json()
        return stats

    def dropped(self, source_id: str) -> list[dict[str, Any]]:
        response = self.admin.get(f"/api/sources/{source_id}/dropped")
        assert response.status_code == 200, response.text
        dropped: list[dict[str, Any]] = response.json()["dropped"]
        return dropped


_counter = iter(range(1, 1_000_000))


def _unique_name() -> str:
    return f"Source {next(_counter)}"


SandboxFactory = Callable[..., Sandbox]


@pytest.fixture
def make_sandbox() -> Iterator[SandboxFactory]:
    """Start receivers with any config; all are stopped at the end of the test."""
    stack: list[Any] = []

    def start(**config: Any) -> Sandbox:
        config.setdefault("state_path", None)
        config.setdefault("admin_token", ADMIN_TOKEN)
        callbacks = {
            k: config.pop(k)
            for k in ("authorize_manage", "authorize_admin", "csrf_token", "clock", "layout")
            if k in config
        }
        app = create_sandbox_app(SandboxConfig(**config), **callbacks)
        running = serve(app)
        url = running.__enter__()
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        http = httpx.Client(base_url=url)
        stack.append((running, admin, http))
        return Sandbox(url, app, admin, http)

    yield start
    for running, admin, http in reversed(stack):
        admin.close()
        http.close()
        running.__exit__(None, None, None)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """One receiver (segment mode, in memory) shared by a test module; use fresh sources."""
    app = create_sandbox_app(SandboxConfig(state_path=None, admin_token=ADMIN_TOKEN))
    with serve(app) as url:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with (
            httpx.Client(base_url=url, headers=headers) as admin,
            httpx.Client(base_url=url) as http,
        ):
            yield Sandbox(url, app, admin, http)


@pytest.fixture(scope="module")
def strict_sandbox() -> Iterator[Sandbox]:
    """One receiver in strict mode (refuses bad calls and unknown keys) shared by a module."""
    config = SandboxConfig(state_path=None, admin_token=ADMIN_TOKEN, unknown_key_mode="strict")
    app = create_sandbox_app(config)
    with serve(app) as url:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with (
            httpx.Client(base_url=url, headers=headers) as admin,
            httpx.Client(base_url=url) as http,
        ):
            yield Sandbox(url, app, admin, http)


@pytest.fixture
def source(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox.new_source()


class StreamListener:
    """A Debugger stream read on a thread: ``connected`` once it opened, ``ended`` when it ends."""

    def __init__(self, url: str, **request: Any) -> None:
        self.url = url
        self.request = request
        self.connected = threading.Event()
        self.ended = threading.Event()
        self.lines: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self, timeout: float = 5) -> StreamListener:
        self.thread.start()
        assert self.connected.wait(timeout), f"the stream did not open: {self.error!r}"
        return self

    def _run(self) -> None:
        try:
            with httpx.stream("GET", self.url, timeout=30, **self.request) as response:
                assert response.status_code == 200, response.status_code
                for line in response.iter_lines():
                    self.lines.append(line)
                    if line.startswith(": connected"):
                        self.connected.set()
        except Exception as exc:  # reported by the test (e.g. a connection cut mid-stream)
            self.error = exc
        finally:
            self.ended.set()

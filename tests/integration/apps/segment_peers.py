"""Segment destinations on loopback for the conformance kit: the built-in local Segment
(lenient or strict, with its fault injection and its archive of every accepted call), and a
receiver that answers 413 to a batch of more calls than it takes (as RudderStack and proxies
do; the local Segment answers 400 to an oversized batch, as Segment does)."""

from __future__ import annotations

import gzip
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from segbridge.core.clock import SYSTEM_CLOCK, Clock
from segbridge.sandbox import (
    FaultSettings,
    SandboxConfig,
    create_sandbox_app,
    ensure_default_source,
)
from segbridge.sandbox.config import UnknownKeyMode
from tests.support.servers import serve_in_thread, unused_port


@dataclass(frozen=True)
class LocalSegment:
    url: str
    write_key: str
    archive: Path

    def kept(self) -> list[str]:
        """The messageIds of the calls it accepted, from its archive."""
        if not self.archive.exists():
            return []
        lines = self.archive.read_bytes().splitlines()
        return [str(orjson.loads(line)["messageId"]) for line in lines if line.strip()]


@contextmanager
def local_segment(mode: UnknownKeyMode = "segment", faults: FaultSettings | None = None,
                  clock: Clock = SYSTEM_CLOCK, late: float = 0.0) -> Iterator[LocalSegment]:
    """The local Segment on loopback, with the write key of its default source; its faults'
    downtime on ``clock``. With ``late``, nothing listens at its address until ``clock`` has
    gone ``late`` seconds on."""
    with tempfile.TemporaryDirectory(prefix="kit-segment-") as folder:
        archive = Path(folder) / "archive.ndjson"
        app = create_sandbox_app(SandboxConfig(
            state_path=None, archive_path=archive, unknown_key_mode=mode, faults=faults,
            fault_seed=12), clock=clock)
        try:
            write_key = ensure_default_source(app).write_key
            serving = starting_late(app, clock, late) if late else serve_in_thread(app)
            with serving as url:
                yield LocalSegment(url, write_key, archive)
        finally:
            app.state.sandbox.close()


@contextmanager
def starting_late(app: Starlette, clock: Clock, after: float) -> Iterator[str]:
    """``app``'s address at once; it is served from when ``clock`` reads ``after`` on."""
    port = unused_port()
    stop = threading.Event()

    def serve_when_due() -> None:
        while clock.monotonic() < after and not stop.is_set():
            time.sleep(0.005)
        if not stop.is_set():
            with serve_in_thread(app, port):
                stop.wait()

    thread = threading.Thread(target=serve_when_due, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(timeout=10)


@dataclass
class SizeLimit:
    """Answers 413 to a batch of more than ``most`` calls, keeps the others' messageIds."""

    most: int
    kept: list[str] = field(default_factory=list)

    async def batch(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        calls = orjson.loads(body)["batch"]
        if len(calls) > self.most:
            return JSONResponse({"error": "too large"}, status_code=413)
        self.kept.extend(str(call["messageId"]) for call in calls)
        return JSONResponse({"success": True})


@contextmanager
def size_limited(most: int) -> Iterator[tuple[str, SizeLimit]]:
    limit = SizeLimit(most)
    app = Starlette(routes=[Route("/v1/batch", limit.batch, methods=["POST"])])
    with serve_in_thread(app) as url:
        yield url, limit

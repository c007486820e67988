"""Small real HTTP peers for failure tests: a receiver that answers a chosen status, a socket
that accepts and never answers (timeouts)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.servers import serve_in_thread


@dataclass
class Answers:
    """What the status receiver answers; tests change it while it runs."""

    tracking_status: int = 200
    settings_status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)


def status_receiver_app(answers: Answers) -> Starlette:
    async def tracking(request: Request) -> Response:
        answers.requests.append({"path": request.url.path, "body": await request.body(),
                                 "authorization": request.headers.get("authorization")})
        return JSONResponse({"success": answers.tracking_status < 300},
                            status_code=answers.tracking_status, headers=answers.headers)

    async def source_settings(_request: Request) -> Response:
        return JSONResponse({}, status_code=answers.settings_status)

    return Starlette(routes=[
        Route("/v1/projects/{key}/settings", source_settings, methods=["GET"]),
        Route("/v1/{call}", tracking, methods=["POST"]),
    ])


@contextmanager
def status_receiver() -> Iterator[tuple[str, Answers]]:
    answers = Answers()
    with serve_in_thread(status_receiver_app(answers)) as base:
        yield base, answers


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: every request times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()

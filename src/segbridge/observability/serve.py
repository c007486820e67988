"""/metrics, /healthz and /readyz for a process that serves no HTTP otherwise (`segbridge
worker`): the server's own routes (``api.routes.health``) on a port of the worker's.

A worker's delivery counters live in the worker's process, so each worker is scraped on its
own port; its database aggregates (runs, queue, workers) are the cluster's, the same from
every process. The CLI calls, e.g. for ``segbridge worker --metrics-port 9187``::

    health = serve_worker_health(runtime, 9187)   # before the worker starts
    ...
    health.stop()                                 # after it ended
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from segbridge.api.errors import install_error_handlers
from segbridge.api.routes import health
from segbridge.runtime import Runtime

STARTUP_SECONDS = 10.0


class WorkerHealth:
    """The health and metrics server of a worker, in a daemon thread."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket,
                 thread: threading.Thread) -> None:
        self._server = server
        self._sock = sock
        self._thread = thread
        self.port: int = sock.getsockname()[1]

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def health_app(runtime: Runtime) -> FastAPI:
    """An app with only /healthz, /readyz and /metrics."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(health.router)
    return app


def serve_worker_health(runtime: Runtime, port: int, host: str = "127.0.0.1") -> WorkerHealth:
    """Serve the health routes on ``host:port`` (0: a free port, see ``.port``) until
    ``stop``. Without a metrics token /metrics answers loopback only, so a scraper on another
    machine needs ``host="0.0.0.0"`` and ``SEGBRIDGE_METRICS_TOKEN``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(health_app(runtime), log_level="warning", lifespan="off",
                            access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="worker-health", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the health server did not start on port {port}")
        time.sleep(0.01)
    return WorkerHealth(server, sock, thread)

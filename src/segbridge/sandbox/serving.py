"""Serving the receiver with uvicorn so that live streams never hold a shutdown.

ASGI tells an app nothing about a server shutting down while a response is still open, and
uvicorn waits for open responses before it runs the lifespan's shutdown: an endless Debugger
stream would hold it (forever, without ``timeout_graceful_shutdown``). So the receiver is told
by whoever runs the server: ``ShutdownAwareServer`` is a ``uvicorn.Server`` whose
``shutdown`` (the step uvicorn takes first, on a signal or ``should_exit``) calls
``on_shutdown``, e.g. ``SandboxState.end_streams`` or ``LocalSegment.end_streams``, and then
goes on as uvicorn does. Only the server's public methods are used: ``uvicorn.Server(config)``,
``run``/``serve`` and the ``shutdown`` step they call.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn


class ShutdownAwareServer(uvicorn.Server):
    """A uvicorn server that calls ``on_shutdown`` as soon as it starts shutting down."""

    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.on_shutdown is not None:
            self.on_shutdown()  # never blocks: it only tells the streams to end
        await super().shutdown(sockets)

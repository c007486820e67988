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

import gc
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


# A batch of 2,000 calls makes some 20,000 dicts and objects, nearly all freed by reference
# counting as soon as the request ends; with CPython's default threshold (700) the cyclic
# collector ran about 30 times per batch and then walked the Debugger's kept events: a third
# of the receiver's CPU per event. Cycles are still collected, only less often.
COLLECT_EVERY = 50_000


def tune_collector() -> None:
    """Keep the objects made at start out of every collection, and collect less often."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(COLLECT_EVERY, middle, oldest)

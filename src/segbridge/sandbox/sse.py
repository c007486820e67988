"""The Debugger's live stream as server-sent events: one ``event`` per accepted call.

A stream ends when its source is deleted, when the receiver's state is closed (from any
thread), or when the server shuts down. ASGI tells an app nothing about a server shutting
down until every response has finished, so an endless stream would hold the shutdown (uvicorn
waits for open connections, forever unless ``timeout_graceful_shutdown`` is set). The stream
therefore polls, a few times a second, what the server shows of the connection: uvicorn asks
each open connection to shut down by clearing its request cycle's ``keep_alive`` flag, which
the stream reads through the ``receive`` callable (a bound method of that cycle). Under a
server that shows nothing of the kind the stream still ends on ``close()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive

from segbridge.sandbox.debugger import SourceFeed

KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 0.2  # how soon a stream notices a closed state or a server shutting down


class ServerConnection:
    """The server's view of one connection, as far as it shows it (uvicorn: the request cycle)."""

    def __init__(self, receive: Receive | None) -> None:
        self._cycle: Any = getattr(receive, "__self__", None)
        # Only a connection that started kept-alive can tell us it was asked to close.
        self._watch = getattr(self._cycle, "keep_alive", None) is True

    def closing(self) -> bool:
        """Has the server asked this connection to close (it is shutting down)?"""
        return self._watch and getattr(self._cycle, "keep_alive", True) is False


async def _frames(
    feed: SourceFeed, connection: ServerConnection, keepalive: float, poll: float
) -> AsyncIterator[bytes]:
    subscriber = feed.subscribe()
    try:
        yield b"retry: 2000\n: connected\n\n"
        quiet_since = time.monotonic()
        while True:
            try:
                record = await asyncio.wait_for(subscriber.queue.get(), poll)
            except TimeoutError:
                if feed.closed or connection.closing():
                    return
                if time.monotonic() - quiet_since >= keepalive:
                    quiet_since = time.monotonic()
                    yield b": keep-alive\n\n"
                continue
            if record is None:  # the source was deleted or the receiver stops
                return
            quiet_since = time.monotonic()
            yield record.sse()
    finally:
        feed.unsubscribe(subscriber)


def event_stream(
    feed: SourceFeed,
    receive: Receive | None = None,
    keepalive: float = KEEPALIVE_SECONDS,
    poll: float = POLL_SECONDS,
) -> StreamingResponse:
    """The stream of ``feed``; ``receive`` (the request's) lets it notice a server shutdown."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _frames(feed, ServerConnection(receive), keepalive, poll),
        media_type="text/event-stream",
        headers=headers,
    )

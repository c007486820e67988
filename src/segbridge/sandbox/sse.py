"""The Debugger's live stream as server-sent events: one ``event`` per accepted call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from segbridge.sandbox.debugger import SourceFeed

KEEPALIVE_SECONDS = 15.0


async def _frames(feed: SourceFeed, keepalive: float) -> AsyncIterator[bytes]:
    queue = feed.subscribe()
    try:
        yield b"retry: 2000\n: connected\n\n"
        while True:
            try:
                record = await asyncio.wait_for(queue.get(), keepalive)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if record is None:  # the source was deleted or the receiver stops
                return
            yield record.sse()
    finally:
        feed.unsubscribe(queue)


def event_stream(feed: SourceFeed, keepalive: float = KEEPALIVE_SECONDS) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _frames(feed, keepalive), media_type="text/event-stream", headers=headers
    )

"""The Debugger's live stream as server-sent events: one ``event`` per accepted call.

A viewer that gives the last event it has (``Last-Event-ID``, which EventSource sends when
it reconnects, or ``?after=<seq>`` on its first connection) first gets the kept events after
it, oldest first, then the live ones: a reconnect misses nothing the Debugger still keeps,
and no event is sent twice.

A stream ends when its source is deleted or when the receiver ends its streams
(``SandboxState.end_streams``, also part of ``close``), from any thread: the Debugger's feed
queues the end, and its ``closed`` flag, which the stream checks a few times a second, ends it
even when that queue cannot be reached. A server shutting down does not show itself to an
open response, so whoever runs the server ends the streams as the shutdown starts
(``serving.ShutdownAwareServer``); nothing here reads the server's internals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from segbridge.sandbox.debugger import SourceFeed

KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 0.2  # how soon a stream notices a closed feed


async def _frames(
    feed: SourceFeed, keepalive: float, poll: float, after: int | None
) -> AsyncIterator[bytes]:
    subscriber = feed.subscribe()  # before the catch-up: nothing falls between the two
    try:
        yield b"retry: 2000\n: connected\n\n"
        sent = -1
        for kept in feed.since(after) if after is not None else ():
            sent = kept.seq
            yield kept.sse()
        quiet_since = time.monotonic()
        while True:
            try:
                record = await asyncio.wait_for(subscriber.queue.get(), poll)
            except TimeoutError:
                if feed.closed:
                    return
                if time.monotonic() - quiet_since >= keepalive:
                    quiet_since = time.monotonic()
                    yield b": keep-alive\n\n"
                continue
            if record is None:  # the source was deleted or the receiver stops
                return
            if record.seq <= sent:  # already sent by the catch-up
                continue
            quiet_since = time.monotonic()
            yield record.sse()
    finally:
        feed.unsubscribe(subscriber)


def event_stream(
    feed: SourceFeed,
    after: int | None = None,
    keepalive: float = KEEPALIVE_SECONDS,
    poll: float = POLL_SECONDS,
) -> StreamingResponse:
    """The live stream of ``feed``, starting with the kept events after ``after`` (if given)."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _frames(feed, keepalive, poll, after), media_type="text/event-stream", headers=headers
    )


def last_seen(last_event_id: str | None, after: str | None) -> int | None:
    """The viewer's last event: ``Last-Event-ID`` (a reconnect), else ``?after=``; None when
    it gives neither (or nothing readable): then only live events are sent."""
    for value in (last_event_id, after):
        if value is not None and value.strip().isdigit():
            return int(value.strip())
    return None

"""The Debugger: per source, the last N accepted events (newest first), a log of dropped
events with the reason, counters, and live subscribers for the server-sent event stream.

Everything here lives in memory and runs on the event loop; like Segment's Debugger it is a
live sample, not a record (the optional archive is the complete record). The one exception is
``close()`` (of a feed or of the whole Debugger), which any thread may call: each subscriber
is ended on its own event loop (``call_soon_threadsafe`` from other threads), and the
``closed`` flag, which streams also poll, ends them even if that loop no longer runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from segbridge.sandbox.calls import DROP_REASONS, PreparedRequest
from segbridge.sandbox.pretty import pretty

SUBSCRIBER_QUEUE = 1_000  # events buffered per live viewer; a slower viewer misses events


@dataclass(frozen=True, slots=True)
class EventKind:
    """The Debugger's filter: a call type and an event name (a track's ``event``, a page's or
    screen's ``name``); empty means any."""

    call_type: str = ""
    name: str = ""


ANY_KIND = EventKind()


@dataclass(slots=True)
class EventRecord:
    """One accepted event as kept: its stamped JSON (``line``), parsed only when shown
    (``call``): most kept events are pushed out unseen by newer ones."""

    seq: int
    call_type: str
    message_id: str
    received_at: str
    line: bytes
    _call: dict[str, Any] | None = None

    @property
    def call(self) -> dict[str, Any]:
        """The event as JSON (the stamped call as recorded)."""
        if self._call is None:
            self._call = orjson.loads(self.line)
        return self._call

    def matches(self, needle: str) -> bool:
        """Case-insensitive substring search over the raw JSON."""
        return needle in self.line.decode().casefold()

    def is_kind(self, kind: EventKind) -> bool:
        """Of this call type (if given) and event or page name (if given; case-insensitive)."""
        if kind.call_type and self.call_type != kind.call_type:
            return False
        if not kind.name:
            return True
        name = self.call.get("event") or self.call.get("name")
        return isinstance(name, str) and name.casefold() == kind.name.casefold()

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.call_type,
            "message_id": self.message_id,
            "received_at": self.received_at,
            "raw": orjson.Fragment(self.line),  # as recorded: a call nested just under the
            # limit to store is one level too deep to write again inside the answer (a 500)
            "pretty": pretty(self.call),
        }

    def sse(self) -> bytes:
        data = orjson.dumps(self.to_json())
        return b"id: %d\nevent: event\ndata: %s\n\n" % (self.seq, data)


@dataclass(slots=True)
class DropRecord:
    at: str
    reason: str
    call_type: str | None
    message_id: str | None
    count: int = 1
    detail: str | None = None  # what exactly was wrong (the field, the limit)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "reason": self.reason,
            "message": DROP_REASONS.get(self.reason, self.reason),
            "detail": self.detail or DROP_REASONS.get(self.reason, self.reason),
            "type": self.call_type,
            "message_id": self.message_id,
            "count": self.count,
        }


@dataclass
class SourceStats:
    received: int = 0  # calls in valid requests: accepted + dropped + duplicates
    accepted: int = 0
    dropped: int = 0  # answered 200, not accepted (duplicates counted apart)
    duplicates: int = 0
    rejected: int = 0  # requests answered 400
    dropped_by_reason: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "dropped": self.dropped,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "dropped_by_reason": dict(self.dropped_by_reason),
        }


class Subscriber:
    """One live viewer: a bounded queue of records (``None`` ends the stream) on its loop."""

    __slots__ = ("loop", "queue")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[EventRecord | None] = asyncio.Queue(SUBSCRIBER_QUEUE)

    def offer(self, record: EventRecord) -> None:
        """Queue a record unless the viewer is too far behind (runs on ``loop``)."""
        if not self.queue.full():
            self.queue.put_nowait(record)

    def end(self) -> None:
        """Queue the end of the stream from any thread; never blocks, never raises."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._put_end()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(self._put_end)

    def _put_end(self) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # the end matters more than the oldest pending event
        self.queue.put_nowait(None)


class SourceFeed:
    """One source's Debugger."""

    def __init__(self, size: int, *, closed: bool = False) -> None:
        self.events: deque[EventRecord] = deque(maxlen=size)
        self.dropped: deque[DropRecord] = deque(maxlen=size)
        self.stats = SourceStats()
        self.subscribers: set[Subscriber] = set()
        self.closed = closed  # set by close() from any thread; streams poll it
        self._seq = 0

    def record_drop(
        self,
        at: str,
        reason: str,
        call_type: str | None,
        message_id: str | None,
        detail: str | None,
        count: int = 1,
    ) -> None:
        """Log dropped calls (``count`` of them when the whole request was dropped at once)."""
        self.dropped.append(DropRecord(at, reason, call_type or None, message_id, count, detail))
        self.stats.dropped_by_reason[reason] += count
        if reason == "duplicate_message_id":
            self.stats.duplicates += count
        else:
            self.stats.dropped += count

    def add_events(
        self, request: PreparedRequest, accepted: Sequence[int], received_at: str
    ) -> None:
        """Keep the accepted calls of ``request`` (the ``accepted`` indices; only the newest
        ``size`` unless someone is watching)."""
        first = self._seq + 1
        self._seq += len(accepted)
        self.stats.accepted += len(accepted)
        keep = self.events.maxlen or len(accepted)
        start = 0 if self.subscribers else max(0, len(accepted) - keep)
        types, ids, line = request.call_types, request.message_ids, request.line
        for offset in range(start, len(accepted)):
            index = accepted[offset]
            record = EventRecord(
                first + offset, types[index], ids[index] or "", received_at, line(index)
            )
            self.events.append(record)
            self._publish(record)

    def _publish(self, record: EventRecord) -> None:
        for subscriber in self.subscribers:
            subscriber.offer(record)

    def newest(
        self, query: str = "", limit: int | None = None, kind: EventKind = ANY_KIND
    ) -> list[EventRecord]:
        needle = query.casefold()
        found: list[EventRecord] = []
        for record in reversed(self.events):
            if limit is not None and len(found) >= limit:
                break
            if (not needle or record.matches(needle)) and record.is_kind(kind):
                found.append(record)
        return found

    def since(self, seq: int) -> list[EventRecord]:
        """The kept events after ``seq``, oldest first (a reconnecting viewer's catch-up)."""
        return [record for record in self.events if record.seq > seq]

    def subscribe(self) -> Subscriber:
        """A new live viewer, on the running event loop (already ended if the feed is closed)."""
        subscriber = Subscriber()
        self.subscribers.add(subscriber)
        if self.closed:
            subscriber.end()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def close(self) -> None:
        """End every live stream of this feed; safe from any thread."""
        self.closed = True
        for subscriber in list(self.subscribers):  # a copy: the loop may (un)subscribe meanwhile
            subscriber.end()


class Debugger:
    """All sources' feeds, created on first use."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.closed = False
        self._feeds: dict[str, SourceFeed] = {}

    def feed(self, source_id: str) -> SourceFeed:
        feed = self._feeds.get(source_id)
        if feed is None:
            feed = self._feeds[source_id] = SourceFeed(self.size, closed=self.closed)
            if self.closed:  # close() ran on another thread meanwhile and may have missed it
                feed.close()
        return feed

    def remove(self, source_id: str) -> None:
        feed = self._feeds.pop(source_id, None)
        if feed is not None:
            feed.close()

    def close(self) -> None:
        """End every live stream (and any opened later); safe from any thread."""
        self.closed = True
        for feed in list(self._feeds.values()):
            feed.close()

    def feeds(self) -> Iterable[SourceFeed]:
        return self._feeds.values()

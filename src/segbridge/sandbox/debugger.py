"""The Debugger: per source, the last N accepted events (newest first), a log of dropped
events with the reason, counters, and live subscribers for the server-sent event stream.

Everything here lives in memory and runs on the event loop; like Segment's Debugger it is a
live sample, not a record (the optional archive is the complete record).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from segbridge.sandbox.calls import DROP_REASONS, PreparedCall
from segbridge.sandbox.pretty import pretty

SUBSCRIBER_QUEUE = 1_000  # events buffered per live viewer; a slower viewer misses events


@dataclass(slots=True)
class EventRecord:
    seq: int
    call_type: str
    message_id: str
    received_at: str
    call: dict[str, Any]
    line: bytes

    def matches(self, needle: str) -> bool:
        """Case-insensitive substring search over the raw JSON."""
        return needle in self.line.decode().casefold()

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.call_type,
            "message_id": self.message_id,
            "received_at": self.received_at,
            "raw": self.call,
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

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "reason": self.reason,
            "message": DROP_REASONS.get(self.reason, self.reason),
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


class SourceFeed:
    """One source's Debugger."""

    def __init__(self, size: int) -> None:
        self.events: deque[EventRecord] = deque(maxlen=size)
        self.dropped: deque[DropRecord] = deque(maxlen=size)
        self.stats = SourceStats()
        self.subscribers: set[asyncio.Queue[EventRecord | None]] = set()
        self._seq = 0

    def record_drop(self, at: str, reason: str, call: PreparedCall | None, count: int = 1) -> None:
        kind = call.call_type if call else None
        message_id = call.message_id if call else None
        self.dropped.append(DropRecord(at, reason, kind, message_id, count))
        self.stats.dropped_by_reason[reason] += count
        if reason == "duplicate_message_id":
            self.stats.duplicates += count
        else:
            self.stats.dropped += count

    def add_events(self, calls: list[PreparedCall], received_at: str) -> None:
        """Keep the accepted calls (only the newest ``size`` unless someone is watching)."""
        first = self._seq + 1
        self._seq += len(calls)
        self.stats.accepted += len(calls)
        keep = self.events.maxlen or len(calls)
        start = 0 if self.subscribers else max(0, len(calls) - keep)
        for offset in range(start, len(calls)):
            call = calls[offset]
            message_id = call.message_id or ""
            record = EventRecord(
                first + offset, call.call_type, message_id, received_at, call.call, call.line
            )
            self.events.append(record)
            self._publish(record)

    def _publish(self, record: EventRecord) -> None:
        for queue in self.subscribers:
            if not queue.full():
                queue.put_nowait(record)

    def newest(self, query: str = "", limit: int | None = None) -> list[EventRecord]:
        needle = query.casefold()
        found: list[EventRecord] = []
        for record in reversed(self.events):
            if limit is not None and len(found) >= limit:
                break
            if not needle or record.matches(needle):
                found.append(record)
        return found

    def subscribe(self) -> asyncio.Queue[EventRecord | None]:
        queue: asyncio.Queue[EventRecord | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[EventRecord | None]) -> None:
        self.subscribers.discard(queue)

    def close(self) -> None:
        """End every live stream of this feed."""
        for queue in self.subscribers:
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(None)


class Debugger:
    """All sources' feeds, created on first use."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._feeds: dict[str, SourceFeed] = {}

    def feed(self, source_id: str) -> SourceFeed:
        feed = self._feeds.get(source_id)
        if feed is None:
            feed = self._feeds[source_id] = SourceFeed(self.size)
        return feed

    def remove(self, source_id: str) -> None:
        feed = self._feeds.pop(source_id, None)
        if feed is not None:
            feed.close()

    def close(self) -> None:
        for feed in self._feeds.values():
            feed.close()

    def feeds(self) -> Iterable[SourceFeed]:
        return self._feeds.values()

"""Recording a validated request: receiver-level counters, drops, dedup, archive, Debugger."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from segbridge.sandbox.archive import ArchiveWriter
from segbridge.sandbox.calls import PreparedRequest
from segbridge.sandbox.debugger import Debugger
from segbridge.sandbox.dedup import MessageIdDeduper
from segbridge.sandbox.store import Source
from segbridge.sandbox.timestamps import iso

UNKNOWN_KEY_LOG = 100


def mask_key(key: str) -> str:
    """Enough of a write key to recognise it, never the whole key (of a short one, nothing)."""
    shown = key[:4] if len(key) >= 16 else ""
    return f"{shown}… ({len(key)} characters)"


@dataclass
class ReceiverStats:
    """Counters that belong to no source (the key is missing or unknown)."""

    requests: int = 0
    unknown_key_requests: int = 0
    unknown_key_events: int = 0
    missing_key_requests: int = 0
    rejected_requests: int = 0  # every 400, with or without a known source
    in_flight: int = 0  # tracking requests being handled now
    peak_in_flight: int = 0  # the most at once since the receiver started (or was reset)
    faults: Counter[str] = field(default_factory=Counter)
    unknown_keys: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=UNKNOWN_KEY_LOG)
    )

    def unknown_key(self, key: str, events: int) -> None:
        self.unknown_key_requests += 1
        self.unknown_key_events += events
        at = iso(datetime.now(UTC))
        self.unknown_keys.append({"at": at, "write_key": mask_key(key), "events": events})

    def request_started(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def request_ended(self) -> None:
        self.in_flight -= 1

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "rejected_requests": self.rejected_requests,
            "missing_key_requests": self.missing_key_requests,
            "unknown_write_key": {
                "requests": self.unknown_key_requests,
                "events": self.unknown_key_events,
                "recent": list(reversed(self.unknown_keys)),
            },
        }


class Recorder:
    """Turns a validated request for a known source into Debugger events and archive lines."""

    def __init__(
        self, debugger: Debugger, dedup: MessageIdDeduper, archive: ArchiveWriter | None
    ) -> None:
        self.debugger = debugger
        self.dedup = dedup
        self.archive = archive

    async def record(self, source: Source, request: PreparedRequest, received_at: str) -> None:
        """Record a request whole, or (archive failure: ``OSError``) nothing of it."""
        feed = self.debugger.feed(source.id)
        if request.over_limit:
            feed.stats.received += request.over_limit
            feed.record_drop(received_at, "too_many_calls", None, None, None, request.over_limit)
            return
        accepted, dropped = self._sift(source, request)
        if self.archive is not None and accepted:
            try:
                await self.archive.append([request.joined_lines(accepted)])
            except OSError:
                self._forget(source, request, accepted)
                raise
        feed.stats.received += len(request)
        types, ids = request.call_types, request.message_ids
        for index, reason, detail in dropped:
            feed.record_drop(received_at, reason, types[index], ids[index], detail)
        feed.add_events(request, accepted, received_at)

    def _sift(
        self, source: Source, request: PreparedRequest
    ) -> tuple[Sequence[int], list[tuple[int, str, str | None]]]:
        """The indices of the accepted calls, and the dropped ones with the reason and detail
        (duplicates included), in the order sent."""
        workspace = source.account_id  # Segment deduplicates across the whole workspace
        drops, generated, ids = request.drops, request.generated, request.message_ids
        if not drops and not generated:  # the common case: every call is looked up
            repeats = self.dedup.seen_each(workspace, ids)  # type: ignore[arg-type]
            if not any(repeats):
                return range(len(ids)), []
            looked: Sequence[int] = range(len(ids))
        else:
            looked = [i for i in range(len(ids)) if i not in drops and i not in generated]
            repeats = self.dedup.seen_each(workspace, [ids[i] or "" for i in looked])
        repeated = {i for i, again in zip(looked, repeats, strict=True) if again}
        accepted: list[int] = []
        dropped: list[tuple[int, str, str | None]] = []
        for index in range(len(ids)):
            drop = drops.get(index)
            if drop is not None:
                dropped.append((index, drop[0], drop[1]))
            elif index in repeated:
                dropped.append((index, "duplicate_message_id", None))
            else:
                accepted.append(index)
        return accepted, dropped

    def _forget(self, source: Source, request: PreparedRequest, accepted: Sequence[int]) -> None:
        for index in accepted:
            if index not in request.generated:
                self.dedup.forget(source.account_id, request.message_ids[index] or "")


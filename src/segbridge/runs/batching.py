"""Batches cut by bytes: add a call's JSON, flush when the next call would not fit.

Calls are serialised once (orjson) and a batch body is built by joining those bytes, so no
call is encoded twice. Limits come from ``apps.segment.limits``.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from segbridge.apps.segment.limits import BATCH_CUT_BYTES, MAX_BATCH_CALLS
from segbridge.sinks.calls import Item as Item
from segbridge.sinks.calls import PackedCalls as PackedCalls

ENVELOPE_BYTES = 64  # {"batch":[...],"sentAt":"2026-01-01T00:00:00.000Z"}


@dataclass
class Batcher:
    """Collects calls until the next one would pass the byte or count limit."""

    cut_bytes: int = BATCH_CUT_BYTES
    max_calls: int = MAX_BATCH_CALLS
    items: list[Item] = field(default_factory=list)
    size: int = ENVELOPE_BYTES

    def fits(self, item: Item) -> bool:
        return (len(self.items) < self.max_calls
                and self.size + len(item.body) + 1 <= self.cut_bytes)

    def add(self, item: Item) -> None:
        self.items.append(item)
        self.size += len(item.body) + 1

    def take(self) -> list[Item]:
        items, self.items, self.size = self.items, [], ENVELOPE_BYTES
        return items

    def __len__(self) -> int:
        return len(self.items)


class PackingBatcher:
    """A lane's Batcher: each call's JSON is copied into the batch's one buffer as it is
    added, and ``take`` gives the batch as ``PackedCalls`` (what crosses to the run's
    process). No call keeps bytes of its own, so orjson's output needs no exact copy first
    (``producer.compact``) and nothing is joined later."""

    __slots__ = ("_buffer", "_ends", "_positions", "_refs", "cut_bytes", "max_calls", "size")

    def __init__(self, cut_bytes: int = BATCH_CUT_BYTES,
                 max_calls: int = MAX_BATCH_CALLS) -> None:
        self.cut_bytes, self.max_calls = cut_bytes, max_calls
        self._new()

    def _new(self) -> None:
        self._buffer = bytearray()
        self._ends: array[int] = array("q")
        self._positions: array[int] = array("q")
        self._refs: list[str] = []
        self.size = ENVELOPE_BYTES

    def fits(self, item: Item) -> bool:
        return (len(self._refs) < self.max_calls
                and self.size + len(item.body) + 1 <= self.cut_bytes)

    def add(self, item: Item) -> None:
        buffer = self._buffer
        if buffer:
            buffer += b","
        buffer += item.body
        self._ends.append(len(buffer))
        self._positions.append(item.position)
        self._refs.append(item.ref)
        self.size += len(item.body) + 1

    def take(self) -> PackedCalls:
        packed = PackedCalls(bytes(self._buffer), self._ends, self._positions, self._refs)
        self._new()
        return packed

    def __len__(self) -> int:
        return len(self._refs)


def batch_body(items: list[Item], sent_at: str) -> bytes:
    """The /v1/batch body for these items, built from their serialised bytes."""
    calls = b",".join(item.body for item in items)
    return b'{"batch":[' + calls + b'],"sentAt":"' + sent_at.encode() + b'"}'

"""Deduplication on messageId over a rolling window, in bounded, compact memory.

Segment drops a call whose messageId it has seen in about the last 24 hours, in any source of
the workspace. The receiver remembers, per workspace (the recorder passes the source's
account as ``scope``), the most recent ``capacity`` ids no older than the window.

Each id is reduced to a 64-bit hash of ``(scope, messageId)`` (Python's salted string hash:
fast, stable within the process, which is all an in-memory table needs; a false duplicate needs
a 64-bit collision, about 1 in 10^7 with a million ids remembered: Segment itself promises 99%).

Layout, all in flat ``array`` buffers allocated once:

* an open-addressing table of hashes (linear probing, at most half full; 0 marks a free slot;
  deletion by backward shift, so there are no tombstones);
* a ring buffer, in arrival order, of each remembered hash and its arrival second; the oldest
  entry is forgotten when the ring is full or when it falls out of the window.

That is 8 bytes x 2-4 slots + 12 bytes of ring per id: about 29 bytes per remembered id, so
the default capacity of 1,000,000 ids costs about 29 MB, whatever the traffic.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable

from segbridge.sandbox.limits import DEDUP_WINDOW_SECONDS

_MASK64 = (1 << 64) - 1


def _hash(scope: str, message_id: str) -> int:
    # (inline in ``seen_each``)
    return (hash((scope, message_id)) & _MASK64) or 1


class MessageIdDeduper:
    """``seen(scope, id)`` answers whether an id is a duplicate and remembers it if not."""

    def __init__(
        self,
        capacity: int,
        window_seconds: float = DEDUP_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        slots = 1 << max(3, (2 * capacity - 1).bit_length())
        self.capacity = capacity
        self.window_seconds = window_seconds
        self._clock = clock
        self._epoch = clock()
        self._mask = slots - 1
        self._table = array("Q", [0]) * slots
        self._ring_hash = array("Q", [0]) * capacity
        self._ring_time = array("I", [0]) * capacity  # whole seconds since start
        self._head = 0  # ring index of the oldest remembered id
        self._size = 0
        self._stale: dict[int, int] = {}  # forgotten ids: their ring entries still to age out

    def __len__(self) -> int:
        return self._size

    def memory_bytes(self) -> int:
        """Bytes held by the buffers (fixed at construction)."""
        return sum(a.itemsize * len(a) for a in (self._table, self._ring_hash, self._ring_time))

    def seen(self, scope: str, message_id: str) -> bool:
        """True if this id was seen within the window (a duplicate); else remember it."""
        return self.seen_each(scope, (message_id,))[0]

    def seen_each(self, scope: str, message_ids: Iterable[str]) -> list[bool]:
        """``seen`` for each id in order, with one clock reading (the ids of one request).
        (One loop with the probing inline: it runs once per received call.)"""
        now = int(self._clock() - self._epoch)
        self._expire(now)
        table, mask, capacity = self._table, self._mask, self.capacity
        ring_hash, ring_time = self._ring_hash, self._ring_time
        seen: list[bool] = []
        for message_id in message_ids:
            key = (hash((scope, message_id)) & _MASK64) or 1
            slot = key & mask
            value = table[slot]
            while value != key and value != 0:
                slot = (slot + 1) & mask
                value = table[slot]
            if value == key:
                seen.append(True)
                continue
            if self._size == capacity:  # full: the oldest id makes room for this one
                freed = self._forget_oldest()
                home = key & mask  # the slot it left is this key's if it comes first
                if freed >= 0 and (freed - home) & mask < (slot - home) & mask:
                    slot = freed
            table[slot] = key
            tail = self._head + self._size
            if tail >= capacity:
                tail -= capacity
            ring_hash[tail] = key
            ring_time[tail] = now
            self._size += 1
            seen.append(False)
        return seen

    def forget(self, scope: str, message_id: str) -> None:
        """Undo ``seen`` for an id whose call was finally not accepted (e.g. archive failure).

        Its ring entry stays until it ages out, marked stale: if the id is seen again, that
        old entry ageing out does not forget the new sighting.
        """
        key = _hash(scope, message_id)
        if self._delete(key) >= 0:
            self._stale[key] = self._stale.get(key, 0) + 1

    def _expire(self, now: int) -> None:
        cutoff = now - self.window_seconds
        while self._size and self._ring_time[self._head] < cutoff:
            self._forget_oldest()

    def _forget_oldest(self) -> int:
        """Forget the oldest id: the slot its deletion left free (-1: none)."""
        key = self._ring_hash[self._head]
        self._head += 1
        if self._head == self.capacity:
            self._head = 0
        self._size -= 1
        if self._stale and key in self._stale:  # an entry of a forgotten sighting
            if self._stale[key] == 1:
                del self._stale[key]
            else:
                self._stale[key] -= 1
            return -1
        return self._delete(key)

    def _delete(self, key: int) -> int:
        """Remove ``key`` by backward-shift deletion (keeps every probe chain unbroken); the
        one slot that became free (-1: ``key`` was not there). Every other slot keeps or
        gets an id, so a probe that ended on a free slot before ends there or on that one."""
        table, mask = self._table, self._mask
        hole = key & mask
        value = table[hole]
        while value != key:
            if value == 0:
                return -1
            hole = (hole + 1) & mask
            value = table[hole]
        probe = hole
        while True:
            probe = (probe + 1) & mask
            value = table[probe]
            if value == 0:
                break
            home = value & mask
            # ``value`` may move into the hole unless its home lies cyclically in (hole, probe].
            if (probe - home) & mask >= (probe - hole) & mask:
                table[hole] = value
                hole = probe
        table[hole] = 0
        return hole

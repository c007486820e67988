"""The calls a run hands to a sink: one serialised call per ``Item``, or many joined in one
``bytes`` when they come from a lane process (``PackedCalls``).

They live here, outside the run engine, because both sides use them: the engine cuts batches
of them and a sink (an application) sends them.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload


@dataclass(slots=True)
class Item:
    """One call in a batch: where its record came from and its JSON."""

    position: int
    ref: str
    body: bytes


class PackedCalls(Sequence[Item]):
    """Calls as they cross from a lane process: their JSON joined by commas in one ``bytes``,
    with where each ends, its position and its ref. Nothing is made per call on arrival (a
    batch body is the joined bytes); an Item is made only when one is asked for (a failed
    call). A slice shares the joined bytes."""

    __slots__ = ("_ends", "_high", "_joined", "_low", "_positions", "_refs")

    def __init__(self, joined: bytes, ends: array[int], positions: array[int],
                 refs: list[str], low: int = 0, high: int | None = None) -> None:
        self._joined = joined
        self._ends = ends
        self._positions = positions
        self._refs = refs
        self._low = low
        self._high = len(ends) if high is None else high

    @classmethod
    def pack(cls, items: Sequence[Item]) -> PackedCalls:
        ends: array[int] = array("q")
        end = -1
        for item in items:
            end += len(item.body) + 1
            ends.append(end)
        return cls(b",".join([item.body for item in items]), ends,
                   array("q", [item.position for item in items]), [item.ref for item in items])

    def __len__(self) -> int:
        return self._high - self._low

    @overload
    def __getitem__(self, index: int) -> Item: ...

    @overload
    def __getitem__(self, index: slice) -> PackedCalls: ...

    def __getitem__(self, index: int | slice) -> Item | PackedCalls:
        if isinstance(index, slice):
            low, high, step = index.indices(len(self))
            if step != 1:
                raise ValueError("packed calls are sliced without a step")
            return PackedCalls(self._joined, self._ends, self._positions, self._refs,
                               self._low + low, self._low + max(low, high))
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        at = self._low + (index % len(self))
        return Item(self._positions[at], self._refs[at],
                    self._joined[self._start(at):self._ends[at]])

    def __iter__(self) -> Iterator[Item]:
        return (self[index] for index in range(len(self)))

    def joined(self) -> bytes:
        """The calls' JSON joined by commas (the inside of a batch's list)."""
        if not len(self):
            return b""
        if self._low == 0 and self._high == len(self._ends):
            return self._joined
        return self._joined[self._start(self._low):self._ends[self._high - 1]]

    def _start(self, at: int) -> int:
        return self._ends[at - 1] + 1 if at else 0


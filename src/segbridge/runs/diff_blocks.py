"""Blocks of a file that a diff sync does not read again: their bytes are those of blocks whose
every record the snapshot holds.

An unchanged run of a diff sync still reads, hashes and compares every record (about 4.7 us
a record in each lane). When a lane's block of the file (``apps.files.boundaries``: 8,192
records) is byte for byte one whose every record the snapshot held at the end of an earlier
run, probing would find each of its records unchanged: the lane counts the block as unchanged
records without reading it.

**What a snapshot keeps** (``diff_snapshots.settled_blocks``): the 128-bit digests of such
blocks (``block_digests``: the block's bytes, keyed by the bytes before the first block, the
BOM and the CSV header, and by what else decides the records and their versions: the export's
type and options, the import's call and mapping, the key field, the record limits). A digest
is kept only while this holds: **for every record of a block with that digest, the snapshot
holds the record's version for its key.**

**How it stays true.** The snapshot's entries change only when a run that did not fail
merges what it sent (``DiffStore.promote``), when deleted keys leave it (an import with a call
for them), and when it is emptied (reset, a new key field). In the same transaction:

- a merge in which every staged row added a key the snapshot did not hold (``only_new``: the
  count of entries grew by the count of staged rows: no key sent twice, no changed record)
  touches no key of a kept block (a key of a kept block is in the snapshot, so no record of it
  is new): the digests stay, and the run adds those of its blocks whose every record it found
  unchanged, or sent as new (``note_block``);
- any other merge, deleted keys leaving, or emptying: the digests are dropped (the next run
  compares every record again, and may keep them again).

The run adds digests only of blocks of the file it scanned, still the same file at its end,
and only for a flow whose records are decided by the file alone: one import, no filter, no
lookup, no call for deleted keys (``settles``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

DIGEST_BYTES = 16


def settles(imports: int, diffed: int, filters: Sequence[Any], lookups: Sequence[Any],
            deletions: bool) -> bool:
    """Whether a run's blocks may be kept and skipped: its records are decided by the file's
    bytes alone (one diffed import, no filter, no lookup, no call for deleted keys)."""
    return imports == 1 and diffed == 1 and not filters and not lookups and not deletions


def salt(export: dict[str, Any], imports: Sequence[Any], key_field: str | None,
         limits: dict[str, int]) -> bytes:
    """What decides a block's records and versions besides its bytes (the path does not)."""
    return orjson.dumps({
        "export": {"type": export.get("type"), "options": export.get("options") or {}},
        "imports": [{"call": imp.call, "mapping": imp.mapping} for imp in imports],
        "key_field": key_field, "limits": limits,
    }, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)


def digests_of(blob: bytes | None) -> set[bytes]:
    """A snapshot's kept digests."""
    if not blob:
        return set()
    return {blob[at:at + DIGEST_BYTES] for at in range(0, len(blob), DIGEST_BYTES)}


def blob_of(digests: Iterable[bytes]) -> bytes | None:
    """The digests as stored (sorted; None when there are none)."""
    ordered = sorted(set(digests))
    return b"".join(ordered) if ordered else None


@dataclass
class RunBlocks:
    """A run's blocks: their starts and digests, and what the run found in each (for its
    only import, whose snapshot keeps the digests)."""

    snapshot: int
    import_name: str
    path: str
    boundaries: Any  # apps.files.boundaries.Boundaries
    digests: dict[int, bytes]  # by the block's start
    unchanged: set[int] = field(default_factory=set)  # every record unchanged (or not read)
    sent_new: set[int] = field(default_factory=set)  # every record new, and delivered

    def skip(self, kept: set[bytes]) -> tuple[int, ...]:
        """The starts of the blocks whose digest the snapshot keeps."""
        return tuple(low for low, digest in self.digests.items() if digest in kept)

    def note(self, low: int, end: int, imports: dict[str, dict[str, int]],
             unsent: bool) -> None:
        """A committed chunk that is one whole block: what its records were (``imports``:
        the chunk's counts per import)."""
        if low not in self.digests or end != self.boundaries.block_end(low):
            return
        records = end - low
        counts = imports.get(self.import_name, {})
        if counts.get("failed", 0) or unsent:
            return
        if counts.get("unchanged", 0) == records:
            self.unchanged.add(low)
        elif counts.get("new", 0) == records and counts.get("sent", 0) == records:
            self.sent_new.add(low)

    def settled(self) -> dict[int, tuple[set[bytes], set[bytes]]]:
        """For ``DiffStore.promote``: the digests this run adds (kept when its merge added
        new keys only; none once the file is no longer the one scanned) and those of every
        block it scanned."""
        adding = {self.digests[low] for low in self.unchanged | self.sent_new} \
            if self.boundaries.still_the_file(self.path) else set()
        return {self.snapshot: (adding, set(self.digests.values()))}

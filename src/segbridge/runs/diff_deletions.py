"""Deleted keys of a diff sync: the call an import sends once for each key its snapshot has
and a finished run no longer found (off by default; ``deleted`` of the flow document's import).

Which keys: those of the snapshot that the run did not see. A run *sees* a key when its record
was sent, held (unchanged, or changed in a sync of new records) or failed with a record error
(the record is still there); a key whose record a filter or a lookup now ignores is gone from
what the import sends, so it is deleted too. They are worked out once, when the run finishes
without failing (``DiffStore.find_gone``: one anti-join in the database), and read back in key
order, page by page: never all in memory.

The call: a ``track`` with its event, or an ``identify``, to the import's connection, with the
identity of the call last sent for the key (its userId and/or anonymousId, kept beside the
snapshot in ``diff_keys``) and the key's value in its properties (traits) under the key
field's name. Its messageId comes from the flow, the import, the key and the version last sent
for it: a run that fails while sending them leaves the snapshot as it was, and the next run
sends the same calls with the same messageIds (Segment drops the repeats). A key whose call
failed stays in the snapshot and is sent again next run; a key with no identity kept (sent
before the import sent calls for deleted keys) cannot be addressed: it is counted as skipped
and forgotten. A key that comes back later is new again.

Counts per import: ``deleted`` (keys gone), ``deletions_sent``, ``deletions_failed`` and
``deletions_skipped``; none of them is an exported record, so exported = sent + failed +
ignored still holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from segbridge.core.clock import isoformat, utcnow
from segbridge.runs.batching import Batcher
from segbridge.runs.counts import Tally
from segbridge.runs.message_ids import MessageIds
from segbridge.sinks.calls import Item
from segbridge.sinks.contracts import Outcome

GONE_PAGE = 5000  # deleted keys read, made into calls and delivered at a time
DELETION_COUNTS = ("deletions_sent", "deletions_failed", "deletions_skipped")
Deliver = Callable[[Sequence[Item]], Awaitable[Outcome]]
Gone = tuple[int, int, bytes | None]
"""A deleted key: its hash, the version last sent for it, and what ``diff_keys`` kept of it."""


@dataclass(frozen=True)
class DeletedCall:
    """The call an import sends for each deleted key (``deleted`` of its flow document)."""

    call: str  # track or identify
    key_field: str  # the export's key field: the key's value goes under this name
    event: str | None = None  # a track's event
    constants: Mapping[str, Any] = field(default_factory=dict)  # properties (traits)

    @classmethod
    def of(cls, spec: object, key_field: str | None) -> DeletedCall | None:
        """From an import's ``deleted`` as stored (checked when the flow was saved); None when
        the import sends nothing for its deleted keys."""
        if isinstance(spec, DeletedCall):
            return spec
        if not isinstance(spec, Mapping) or not key_field:
            return None
        call = str(spec.get("call", "track"))
        constants = spec.get("traits" if call == "identify" else "properties") or {}
        return cls(call, key_field, spec.get("event"), dict(constants))

    def body(self, ids: MessageIds, gone: Gone, timestamp: str) -> bytes | None:
        """The call's JSON for one deleted key, or None when no identity was kept for it."""
        _key, version, about = gone
        known = orjson.loads(about) if about else {}
        identity = {name: known[name] for name in ("userId", "anonymousId")
                    if known.get(name) not in (None, "")}
        if not identity:
            return None
        key = known.get("key")
        call: dict[str, Any] = {"type": self.call, **identity}
        payload = {**self.constants, self.key_field: key}
        if self.call == "track":
            call["event"] = self.event
            call["properties"] = payload
        else:
            call["traits"] = payload
        call["timestamp"] = timestamp
        call["messageId"] = deletion_message_id(ids, self.call, key, version)
        return orjson.dumps(call, default=str)


def deletion_message_id(ids: MessageIds, call: str, key: object, version: int) -> str:
    """The messageId of the call for a deleted key: from the import's ids (flow, import, its
    salt), the key and its last version sent, in a namespace of its own (``deleted:``)."""
    return ids.by_version(f"deleted:{call}:{key}", version)


@dataclass
class DeletionSend:
    """What sending one import's deletion calls came to."""

    tally: Tally = field(default_factory=Tally)
    first_error: str | None = None  # the reason of the first call that failed


async def send_deletions(import_name: str, spec: DeletedCall, ids: MessageIds,
                         pages: Callable[[int | None], Awaitable[list[Gone]]],
                         deliver: Deliver, keep: Callable[[list[int]], Awaitable[None]],
                         ) -> DeletionSend:
    """Send the calls of one import's deleted keys, page by page (``pages(after)``: the next
    keys in key order after ``after``), each page's batches at once (the connection's
    concurrency holds them back as it does a run's chunks). The keys whose call failed are
    handed to ``keep`` (they stay in the snapshot). Raises what the sink raises (``RunFailed``:
    the run fails, the snapshot stays as it was)."""
    done = DeletionSend()
    timestamp = isoformat(utcnow())
    after: int | None = None
    position = 0
    while page := await pages(after):
        after = page[-1][0]
        items: list[Item] = []
        keys: dict[int, int] = {}  # item position -> key hash
        for gone in page:
            body = spec.body(ids, gone, timestamp)
            if body is None:
                done.tally.add_to_import("deletions_skipped", 1, import_name)
                continue
            keys[position] = gone[0]
            items.append(Item(position, f"deleted key {gone[0]}", body))
            position += 1
        failed = await _deliver_page(import_name, items, deliver, done)
        if failed:
            await keep([keys[at] for at in failed])
    return done


async def _deliver_page(import_name: str, items: list[Item], deliver: Deliver,
                        done: DeletionSend) -> list[int]:
    """The page's calls in batches cut as a run's are, delivered together; the positions of
    the calls that failed."""
    batches: list[list[Item]] = []
    batcher = Batcher()
    for item in items:
        if not batcher.fits(item):
            batches.append(batcher.take())
        batcher.add(item)
    if len(batcher):
        batches.append(batcher.take())
    outcomes = await asyncio.gather(*(deliver(batch) for batch in batches),
                                    return_exceptions=True)  # (each batch ends before one's
    # exception is raised: none is left sending once the run is over)
    failed: list[int] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        done.tally.add_to_import("deletions_sent", outcome.sent, import_name)
        done.tally.add("retried", outcome.retried)
        done.tally.add("batches", 1)
        done.tally.add("bytes", outcome.bytes)
        for error in outcome.errors:
            done.tally.add_to_import("deletions_failed", 1, import_name)
            done.first_error = done.first_error or error.reason
            failed.append(error.item.position)
    return failed


def deleted_calls(imports: Sequence[Any], key_field: str | None) -> dict[int, DeletedCall]:
    """The imports (by index in the flow) that send a call for their deleted keys."""
    found: dict[int, DeletedCall] = {}
    for index, imp in enumerate(imports):
        spec = DeletedCall.of(getattr(imp, "deleted", None), key_field)
        if spec is not None:
            found[index] = spec
    return found

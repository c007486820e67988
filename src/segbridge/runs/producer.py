"""The producer: reads the export, filters and maps each record, serialises each call once and
cuts the stream into *chunks* that the engine delivers and commits in order.

What happens to one record (the filters; per import the mapping, the messageId, the call's
JSON and its size check) is the ``RecordStep``: a preview (``flows.preview``) calls the same
step, so it shows exactly the calls and the record errors a run would make.

A chunk is a range of positions ``[start, end)`` with the calls of its records (as batches,
keyed by import), its counts and its record errors. Two ways to cut:

- **one producer** (the default): a chunk ends when a call no longer fits its import's batch,
  after ``CHUNK_SECONDS``, or at ``MAX_CHUNK_ERRORS``; a chunk holds one batch per import.
- **a lane** (one of N producer processes, ``runs.lanes``): the input is cut into blocks of
  ``block_records`` positions dealt round-robin to the lanes; lane i maps the blocks i, i+N,
  i+2N... and every block is one chunk (seq = block + 1), holding as many batches per import as
  its calls need. A lane of a CSV or NDJSON file reads only its own blocks, from where one
  scan in the run's process found them to start (``apps.files.boundaries``); any other file,
  or one whose block starts cannot be proven, is read whole by each lane, which skips the
  others' blocks. Either way positions, refs and record errors are exactly those of one
  producer.

A diffed flow (``runs.diff``) compares each group of records with the snapshot before mapping
them: an unchanged record is counted and not mapped.

A flow's lookups (``runs.lookups``) come first: the records are read in batches whose keys
are looked up at once (a lane looks up only its own blocks' records, on its own connections),
then each record takes the lookups' verdict, the filters, and the mappings. A flow without
lookups keeps the direct path (no batching, no extra call per record).

Nothing else here touches the database or the network: a lane process imports only this, the
exports, the mapping and (for a flow with lookups) the applications that answer them.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, cast

import orjson

from segbridge.apps.segment.limits import MAX_CALL_BYTES
from segbridge.core.errors import FailedStep, FatalError
from segbridge.exports.contracts import (
    Export,
    MappingError,
    MapRecord,
    NotRead,
    SourceRecord,
    SpanReader,
)
from segbridge.runs.batching import Batcher, Item, PackingBatcher
from segbridge.runs.counts import ErrorRow, Tally
from segbridge.runs.diff import (
    SnapshotCheck,
    SyncMode,
    Verdict,
    VersionOf,
    is_sent,
    key_hash,
    missing_key,
    verdict,
)
from segbridge.runs.lookups import LOOKUP_STEP, LookupSteps
from segbridge.runs.message_ids import MessageIds

COMPARE_RECORDS = 2048  # records of a diffed flow compared with the snapshot at once
CHUNK_SECONDS = 1.0  # a chunk is closed after this long even when not full (progress)
MAX_CHUNK_ERRORS = 1024  # ... or once it holds this many record errors (flat memory)
UNWRITABLE = (RecursionError, TypeError, ValueError)  # orjson's errors are TypeError/ValueError


class ImportMapping(Protocol):
    """What the producer needs of an import: its name, compiled mapping and messageIds."""

    @property
    def name(self) -> str: ...

    @property
    def map_record(self) -> MapRecord: ...

    @property
    def ids(self) -> MessageIds: ...


@dataclass(frozen=True)
class CompiledImport:
    """An import as the producer needs it, compiled from its step of a flow document (a lane
    process and a preview make these; a run's plan has its own ``ImportPlan``)."""

    name: str
    map_record: MapRecord
    ids: MessageIds
    sync: SyncMode = SyncMode.ALL
    version: VersionOf | None = None  # a diffed import's record versions (``runs.diff``)
    deleted: Any = None  # a diffed import's call for deleted keys, if it sends one


Filter = Callable[[Mapping[str, Any]], Any]
"""A compiled filter expression: a falsy value drops the record."""
WrittenCall = tuple[dict[str, Any], bytes]
"""A record's call for one import, and its JSON (compact bytes, with its messageId)."""
DiffedCall = tuple[dict[str, Any], bytes, int, int]
"""A diffed record's call and JSON, its key's hash and its version (``runs.diff``)."""
Seen = tuple[int, int, int, int, bytes | None]
"""A diffed record of a chunk, staged when its chunk commits: the import's index, the
position, the key's hash, the version, and (for an import that sends a call for deleted keys)
what that call needs of the key: its value and the identity last sent (JSON). A chunk lists
the records it sends; for an import that sends a call for deleted keys, also the unchanged
ones (seen: not deleted), without the JSON."""
Judged = tuple[int, dict[int, tuple[int, Verdict, int | None]]]
"""A record compared with the snapshots: its key's hash, and per diffed import (by index) its
version, how it compares with the version last sent, and that version (None: never sent)."""


@dataclass(frozen=True, slots=True)
class UnchangedRecords:
    """Records ``position`` to ``end - 1`` (consecutive, in one lane block), all unchanged for
    a flow's only import: counted at once, never mapped (``Producer._judged_records``)."""

    position: int
    end: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a record does not become a call: the step that refused it, the reason, the import
    (None: every import of the flow) and the field. A run keeps it as a record error
    (``ErrorRow``); a preview shows it in the record's ``errors``."""

    step: FailedStep
    reason: str
    import_name: str | None = None
    field: str | None = None


class RecordStep:
    """One record's way to its calls, the same in a run and in a preview: the lookups, the
    filters, then for each import the mapping, the messageId, the call's JSON and its size
    check."""

    __slots__ = ("filters", "kept", "key_field", "lookups")

    def __init__(self, filters: Sequence[Filter], key_field: str | None,
                 lookups: LookupSteps | None = None, *, packed: bool = False) -> None:
        self.filters = filters
        self.key_field = key_field
        self.lookups = lookups if lookups else None
        self.kept: Callable[[bytes], bytes] = _as_written if packed else compact  # a call's
        # JSON as it waits in a batch: a lane packs it at once (``PackingBatcher``)

    def looked_up(self, data: dict[str, Any]) -> bool | Refusal:
        """True: every lookup's answer is in the record (its batch was prepared); False: a
        lookup found nothing and ignores it; a Refusal: a lookup found nothing and fails it."""
        if self.lookups is None:
            return True
        missed = self.lookups.enrich(data)
        if missed is None:
            return True
        if missed.reason is None:
            return False
        return Refusal(LOOKUP_STEP, missed.reason, None, missed.field)

    def passes(self, data: dict[str, Any]) -> bool | Refusal:
        """True: every filter keeps the record; False: one drops it (the record is ignored);
        a Refusal: a filter failed on it."""
        try:
            return all(keep(data) for keep in self.filters)
        except Exception as exc:  # an expression error in a filter: the record fails
            return Refusal(FailedStep.FILTER, str(exc))

    def call(self, imp: ImportMapping, position: int,
             data: dict[str, Any]) -> WrittenCall | Refusal:
        """The record's call for ``imp`` with its JSON, or why it cannot be sent."""
        try:
            call = imp.map_record(data)
            key_field = self.key_field
            key = data.get(key_field) if key_field is not None else None
            call["messageId"] = imp.ids.by_key(key) if key is not None and key != "" \
                else imp.ids.by_position(position, data)
            body = self.kept(orjson.dumps(call, default=str))
        except MappingError as exc:
            return Refusal(FailedStep.MAP, exc.reason, imp.name, exc.field)
        except UNWRITABLE as exc:  # one record's problem (e.g. nested too deep to write)
            return self.unmappable(imp, exc)
        if len(body) > MAX_CALL_BYTES:
            return Refusal(FailedStep.IMPORT,
                           f"the call is {len(body):,} bytes; Segment accepts at most "
                           f"{MAX_CALL_BYTES:,} bytes per call: map fewer or smaller fields",
                           imp.name)
        return call, body

    def diff_call(self, imp: ImportMapping, position: int, data: dict[str, Any],
                  version: int | None = None, replaced: int | None = None) -> DiffedCall | Refusal:
        """The call of a record for an import that sends only changed or new records, with the
        messageId of this version of the record in place of the version ``replaced``
        (``runs.diff``; the version is computed here when the record was not compared: a
        retry, a preview)."""
        key_field = self.key_field
        key = data.get(key_field) if key_field is not None else None
        if key is None or key == "":
            return Refusal(FailedStep.MAP, missing_key(key_field or "key_field"), imp.name,
                           key_field)
        try:
            if version is None:
                version = version_of(imp)(data)
            call = imp.map_record(data)
            call["messageId"] = imp.ids.by_version(key, version, replaced)
            body = self.kept(orjson.dumps(call, default=str))
        except MappingError as exc:
            return Refusal(FailedStep.MAP, exc.reason, imp.name, exc.field)
        except UNWRITABLE as exc:
            return self.unmappable(imp, exc)
        if len(body) > MAX_CALL_BYTES:
            return self._too_large(imp, body)
        return call, body, key_hash(key), version

    @staticmethod
    def _too_large(imp: ImportMapping, body: bytes) -> Refusal:
        return Refusal(FailedStep.IMPORT,
                       f"the call is {len(body):,} bytes; Segment accepts at most "
                       f"{MAX_CALL_BYTES:,} bytes per call: map fewer or smaller fields",
                       imp.name)

    @staticmethod
    def unmappable(imp: ImportMapping, exc: BaseException) -> Refusal:
        """A record whose mapping raised ``exc`` (not a MappingError)."""
        return Refusal(FailedStep.MAP,
                       f"the record cannot be mapped to a call: {_unwritable(exc)}", imp.name)

    @staticmethod
    def unreadable(record: SourceRecord) -> Refusal:
        """A record the export could not read (its data is None)."""
        return Refusal(FailedStep.EXPORT, record.error or "unreadable", None, record.field)


@dataclass
class Source:
    """What a producer reads and how it maps: the export from ``start``, the lookups, the
    filters, the imports in the flow's order, and the key field of messageIds."""

    export: Export
    imports: Sequence[ImportMapping]
    start: int = 0
    key_field: str | None = None
    filters: list[Filter] = field(default_factory=list)
    lookups: LookupSteps | None = None
    diff: SnapshotCheck | None = None  # a diffed flow's snapshots (None: a preview)
    diff_sends_all: bool = False  # a retry of chosen errors: compared (for the version each
    # record replaces: its messageId), then sent whatever the verdict

    def records(self, start: int) -> Iterator[SourceRecord]:
        """The export's records from ``start``, each batch looked up when there are lookups."""
        records = self.export.records(start)
        return self.lookups.batched(records) if self.lookups else records


@dataclass(frozen=True)
class Lane:
    """This producer's share of the input: blocks ``index``, ``index + count``, ... of
    ``block_records`` positions each, counted from ``start`` (the run's checkpoint)."""

    index: int
    count: int
    block_records: int
    start: int = 0

    def around(self, position: int) -> tuple[int, int]:
        """This lane's first block that ends after ``position`` (``Spans``)."""
        block = max(0, (position - self.start) // self.block_records)
        block += (self.index - block) % self.count
        low = self.start + block * self.block_records
        return low, low + self.block_records

    def owns(self, position: int) -> bool:
        """True for a position in one of this lane's blocks."""
        return position >= self.start and \
            (position - self.start) // self.block_records % self.count == self.index

    def seq(self, low: int) -> int:
        """The chunk number of the block starting at ``low``: blocks are numbered from 1 in
        input order, whichever lane maps them (the engine commits in that order)."""
        return (low - self.start) // self.block_records + 1


@dataclass
class Chunk:
    seq: int
    start: int
    end: int = 0
    batches: list[tuple[int, Sequence[Item]]] = field(default_factory=list)  # by import index
    tally: Tally = field(default_factory=Tally)
    errors: list[ErrorRow] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)  # diffed records (``runs.diff_store``)
    verdicts: dict[Marks, int] = field(default_factory=dict)  # counted into ``tally`` when
    # the chunk is closed (a diffed flow's unchanged records cost one dict update each)
    share: float | None = None  # of the input read when the chunk was closed (progress)
    delivered: bool = False  # set by the engine: False when the run stopped before its turn


Marks = tuple[tuple[int, Verdict, bool], ...]
"""A compared record's verdicts: per diffed import (index) the verdict and whether it is held
(not sent)."""
UNCHANGED_ONLY: Marks = ((0, Verdict.UNCHANGED, True),)  # the only import's unchanged record
Effects = Callable[[Chunk], None]
"""How a record that did not simply map changes its chunk's counts and errors."""
Mapped = tuple[list[tuple[int, Item]], Effects | None]


class Producer:
    """Reads, filters, maps, serialises and cuts chunks (in a thread, or in a lane process).

    The loop is the run's throughput: a record that maps cleanly costs its mapping, its
    messageId, one orjson dump and one append; anything else (an unreadable record, a filter,
    a mapping error, a retried call) takes ``_process``, which returns its effects.
    """

    def __init__(self, source: Source, emit: Callable[[Chunk | None], None],
                 slots: threading.Semaphore | None, stop: threading.Event,
                 lane: Lane | None = None) -> None:
        self.source = source
        self.emit = emit
        self.slots = slots
        self.stop = stop
        self.lane = lane
        self.error: BaseException | None = None
        self._seq = 0
        self._batchers: list[Batcher | PackingBatcher] = [
            PackingBatcher() if lane is not None else Batcher() for _ in source.imports]
        self._direct = not source.filters and not source.lookups
        self._step = RecordStep(source.filters, source.key_field, source.lookups,
                                packed=lane is not None)
        self._modes = [sync_mode(imp) for imp in source.imports]
        diffed = any(mode is not SyncMode.ALL for mode in self._modes)
        self._mapper = self._map_diffed if diffed else self._map_all
        self._check = source.diff if diffed else None
        self._deletions = [getattr(imp, "deleted", None) is not None for imp in source.imports]
        self._judged: dict[int, Judged] = {}  # by position: the group being produced
        self._counters: dict[Marks, Effects] = {}
        self._owns = None if lane is None or isinstance(source.export, SpanReader) \
            else lane.owns  # a record of another lane's block (a span reader has none read)
        self._lone = len(source.imports) == 1 and diffed and self._direct and \
            not self._deletions[0] and not source.diff_sends_all  # its unchanged records go
        # by in runs (UnchangedRecords)

    def run(self) -> None:
        try:
            if self.lane is None:
                self._produce()
            else:
                self._produce_lane(self.lane)
        except BaseException as exc:  # reported by the engine as the run's failure
            self.error = exc
        finally:
            if self.source.lookups:
                self.source.lookups.close()
            if self._check is not None and self._check.close is not None:
                self._check.close()
            self.emit(None)

    def _produce(self) -> None:
        source, batchers = self.source, self._batchers
        chunk = self._new_chunk(source.start)
        exported, position = 0, source.start
        deadline = time.monotonic() + CHUNK_SECONDS
        every = 0 if getattr(source.export, "slow", False) else 255  # (a mask: clock checks)
        read = source.records(source.start)
        records: Iterator[SourceRecord | UnchangedRecords] = \
            self._compared(read, self._check) if self._check is not None else read
        for count, record in enumerate(records):
            if not count & every or isinstance(record, UnchangedRecords):  # (up to a group)
                if self.stop.is_set():
                    return
                if exported and (time.monotonic() > deadline
                                 or len(chunk.errors) >= MAX_CHUNK_ERRORS):
                    chunk = self._close(chunk, record.position, exported)
                    exported, deadline = 0, time.monotonic() + CHUNK_SECONDS
            if isinstance(record, UnchangedRecords):
                exported += self._count_unchanged(chunk, record)
                position = record.end
                continue
            items, effects = self._record(record)
            for index, item in items:
                if not batchers[index].fits(item):
                    chunk = self._close(chunk, record.position, exported)
                    exported, deadline = 0, time.monotonic() + CHUNK_SECONDS
                    break
            for index, item in items:
                batchers[index].add(item)
            exported += 1
            if effects is not None:
                effects(chunk)
            position = record.position + 1
        self._close(chunk, position, exported, last=True)

    def _produce_lane(self, lane: Lane) -> None:
        """Map this lane's blocks; every block is one chunk, emitted when the block ends."""
        source, batchers = self.source, self._batchers
        low, high = lane.around(lane.start)
        chunk = Chunk(seq=lane.seq(low), start=low)
        exported, position = 0, low
        export = source.export
        read: Iterator[SourceRecord | NotRead] = export.records_in(lane) \
            if isinstance(export, SpanReader) else export.records(low)
        if source.lookups:  # only this lane's records are looked up (a flow with lookups
            # skips no block: ``runs.diff_blocks.settles``)
            read = source.lookups.batched(cast(Iterator[SourceRecord], read), lane.owns)
        records: Iterator[SourceRecord | NotRead | UnchangedRecords] = read
        if self._check is not None:  # ... and compared (blocks not read: unchanged)
            records = self._compared(read, self._check)
        for record in records:
            position = record.position
            if position >= high:
                if exported:
                    self._close_block(chunk, high, exported)
                low, high = lane.around(position)
                chunk, exported = Chunk(seq=lane.seq(low), start=low), 0
            if position < low:
                continue  # another lane's block
            if isinstance(record, UnchangedRecords):  # (never across a block's end)
                exported += self._count_unchanged(chunk, record)
                position = record.end - 1
                continue
            if isinstance(record, NotRead):  # (only a diff sync's lanes skip blocks)
                raise FatalError("a block was skipped outside a diff sync", cause="lane")
            items, effects = self._record(record)
            for index, item in items:
                batcher = batchers[index]
                if not batcher.fits(item):
                    chunk.batches.append((index, batcher.take()))
                batcher.add(item)
            exported += 1
            if effects is not None:
                effects(chunk)
        if exported:
            self._close_block(chunk, position + 1, exported)

    def _close_block(self, chunk: Chunk, end: int, exported: int) -> None:
        chunk.batches.extend((index, batcher.take())
                             for index, batcher in enumerate(self._batchers) if len(batcher))
        self._emit_closed(chunk, end, exported)

    def _record(self, record: SourceRecord) -> Mapped:
        data = record.data
        if self._direct and data is not None and record.call is None:
            return self._mapper(record, data)
        return self._process(record)

    def _new_chunk(self, start: int) -> Chunk:
        if self.slots is not None:
            take_slot(self.slots, self.stop)  # (stopped: the loop ends at its next check)
        self._seq += 1
        return Chunk(seq=self._seq, start=start)

    def _close(self, chunk: Chunk, end: int, exported: int, *, last: bool = False) -> Chunk:
        chunk.batches = [(index, batcher.take()) for index, batcher in enumerate(self._batchers)]
        self._emit_closed(chunk, end, exported)
        return chunk if last else self._new_chunk(end)

    def _emit_closed(self, chunk: Chunk, end: int, exported: int) -> None:
        chunk.end = end
        chunk.tally.add("exported", exported)
        if chunk.verdicts:
            self._count_verdicts(chunk)
        chunk.share = self.source.export.read_share()
        self.emit(chunk)

    @staticmethod
    def _failed(chunk: Chunk, failures: list[ErrorRow]) -> None:
        for row in failures:
            chunk.tally.add("failed", import_name=row.import_name)
            chunk.errors.append(row)

    def _process(self, record: SourceRecord) -> Mapped:
        """A record off the direct path: unreadable, filtered, or a retried call."""
        if record.call is not None:
            return self._prepared_call(record)
        if record.data is None:
            unreadable = self._step.unreadable(record)
            return [], lambda chunk: self._failed_all(chunk, record, unreadable)
        data = record.data
        found = self._step.looked_up(data)
        if found is not True:
            return self._refused(record, found)
        verdict = self._step.passes(data)
        if verdict is not True:
            return self._refused(record, verdict)
        return self._mapper(record, data)

    def _refused(self, record: SourceRecord, verdict: bool | Refusal) -> Mapped:
        """A record a lookup or a filter ignores (False) or fails (a Refusal)."""
        if isinstance(verdict, Refusal):
            return [], lambda chunk: self._failed_all(chunk, record, verdict)
        return [], self._ignored

    def _map_all(self, record: SourceRecord, data: dict[str, Any]) -> Mapped:
        """The record's call for every import; the imports that cannot map it fail it."""
        items: list[tuple[int, Item]] = []
        failures: list[ErrorRow] | None = None
        position, call_for = record.position, self._step.call
        for index, imp in enumerate(self.source.imports):
            outcome = call_for(imp, position, data)
            if isinstance(outcome, Refusal):
                failures = [*(failures or []), ErrorRow(
                    position, record.ref, outcome.step, outcome.reason, outcome.import_name,
                    field=outcome.field, data=data)]
            else:
                items.append((index, Item(position, record.ref, outcome[1])))
        return items, partial(self._failed, failures=failures) if failures else None

    def _map_diffed(self, record: SourceRecord, data: dict[str, Any]) -> Mapped:
        """``_map_all`` for a flow with an import that sends only changed or new records: such
        an import maps a record only when it sends it (the record was compared with the
        snapshot in its group, ``_compare``), and the chunk notes what it sends."""
        items: list[tuple[int, Item]] = []
        failures: list[ErrorRow] = []
        seen: list[Seen] = []
        marks: list[tuple[int, Verdict, bool]] = []
        position, step = record.position, self._step
        judged = self._judged.get(position)
        for index, (imp, mode) in enumerate(zip(self.source.imports, self._modes, strict=True)):
            if mode is SyncMode.ALL:
                outcome: WrittenCall | DiffedCall | Refusal = step.call(imp, position, data)
            else:
                compared = judged[1].get(index) if judged is not None else None
                version = replaced = None
                if compared is not None and judged is not None:
                    version, found, replaced = compared
                    sent = is_sent(mode, found) or self.source.diff_sends_all
                    if not self.source.diff_sends_all:  # (a retry counts what it sent only)
                        marks.append((index, found, not sent))
                    if not sent:
                        if self._deletions[index]:
                            seen.append((index, position, judged[0], version, None))
                        continue
                outcome = step.diff_call(imp, position, data, version, replaced)
            if isinstance(outcome, Refusal):
                failures.append(ErrorRow(position, record.ref, outcome.step, outcome.reason,
                                         outcome.import_name, field=outcome.field, data=data))
                continue
            items.append((index, Item(position, record.ref, outcome[1])))
            if len(outcome) == 4:
                seen.append((index, position, outcome[2], outcome[3],
                             _about(data, step.key_field, outcome[0])
                             if self._deletions[index] else None))
        if not failures and not seen:
            return items, self._counter(tuple(marks)) if marks else None
        counted = tuple(marks)

        def effects(chunk: Chunk) -> None:
            if failures:
                self._failed(chunk, failures)
            chunk.seen.extend(seen)
            if counted:
                chunk.verdicts[counted] = chunk.verdicts.get(counted, 0) + 1
        return items, effects

    def _count_unchanged(self, chunk: Chunk, records: UnchangedRecords) -> int:
        """Count a run of unchanged records (the only import's verdicts); how many."""
        count = records.end - records.position
        chunk.verdicts[UNCHANGED_ONLY] = chunk.verdicts.get(UNCHANGED_ONLY, 0) + count
        return count

    def _counter(self, marks: Marks) -> Effects:
        """The effects of a record whose only effect is its verdicts (kept per kind)."""
        counter = self._counters.get(marks)
        if counter is None:
            def counter(chunk: Chunk) -> None:
                chunk.verdicts[marks] = chunk.verdicts.get(marks, 0) + 1
            self._counters[marks] = counter
        return counter

    def _count_verdicts(self, chunk: Chunk) -> None:
        """The chunk's verdicts into its counts: new, changed or unchanged per import; a held
        record (not sent) is also ignored, so exported = sent + failed + ignored holds."""
        imports = self.source.imports
        for marks, amount in chunk.verdicts.items():
            for index, found, held in marks:
                name = imports[index].name
                chunk.tally.add_to_import(found.value, amount, name)
                if held:
                    chunk.tally.add("ignored", amount, name)
        chunk.verdicts = {}

    def _compared(self, records: Iterator[SourceRecord | NotRead],
                  check: SnapshotCheck) -> Iterator[SourceRecord | UnchangedRecords]:
        """The records, each group of COMPARE_RECORDS compared with the snapshots (the
        verdicts in ``_judged``) before any of them is mapped; a block not read (its every
        record held by the snapshot: ``runs.diff_blocks``) passes, in order, as unchanged."""
        group: list[SourceRecord] = []
        for record in records:
            if isinstance(record, NotRead):
                if group:
                    yield from self._judged_records(group, self._compare(group, check))
                    group = []
                yield UnchangedRecords(record.position, record.end)
                continue
            group.append(record)
            if len(group) == COMPARE_RECORDS:
                yield from self._judged_records(group, self._compare(group, check))
                group = []
        if group:
            yield from self._judged_records(group, self._compare(group, check))

    def _judged_records(self, group: list[SourceRecord],
                        unchanged: set[int]) -> Iterator[SourceRecord | UnchangedRecords]:
        """The group's records, those at the ``unchanged`` positions as runs of consecutive
        positions, each within one lane block (the producer's loops count a run at once)."""
        if not unchanged:
            yield from group
            return
        first, last = group[0].position, group[-1].position
        if len(unchanged) == len(group) and last - first == len(group) - 1:  # all of them
            yield from self._unchanged_runs(first, last + 1)
            return
        lane, end, high = self.lane, -1, -1  # the run: first..end-1, below high
        first = -1
        for record in group:
            position = record.position
            if position in unchanged:
                if position == end and position < high:
                    end += 1
                    continue
                if end > first:
                    yield UnchangedRecords(first, end)
                first, end = position, position + 1
                high = lane.around(position)[1] if lane is not None else sys.maxsize
                continue
            if end > first:
                yield UnchangedRecords(first, end)
                first = end
            yield record
        if end > first:
            yield UnchangedRecords(first, end)

    def _unchanged_runs(self, first: int, end: int) -> Iterator[UnchangedRecords]:
        """Positions ``first``..``end - 1`` as runs, each within one lane block."""
        lane = self.lane
        while first < end:
            high = min(end, lane.around(first)[1]) if lane is not None else end
            yield UnchangedRecords(first, high)
            first = high

    def _compare(self, group: list[SourceRecord], check: SnapshotCheck) -> set[int]:
        """Each readable record's key and versions, compared at once per import: the verdicts
        in ``_judged``. A record without a key, or whose version cannot be written, is left
        out: its mapping refuses it. A flow's only import (``_lone``) has its unchanged
        records' positions returned instead (they are counted, not judged one by one)."""
        key_field, owns = self.source.key_field, self._owns
        diffed = [(index, version_of(imp)) for index, imp in enumerate(self.source.imports)
                  if index in check.snapshots]
        if self._lone and len(diffed) == 1 and key_field is not None:
            return self._compare_lone(group, check, key_field, *diffed[0])
        compared: dict[int, tuple[list[int], list[int], list[int]]] = {
            index: ([], [], []) for index, _version in diffed}  # positions, keys, versions
        hashes: dict[int, int] = {}  # by position
        for record in group:
            data = record.data
            if data is None or record.call is not None or key_field is None or \
                    (owns is not None and not owns(record.position)):
                continue
            key = data.get(key_field)
            if key is None or key == "":
                continue
            hashed = hashes[record.position] = key_hash(key)
            for index, version in diffed:
                try:
                    current = version(data)
                except UNWRITABLE:
                    continue
                positions, keys, versions = compared[index]
                positions.append(record.position)
                keys.append(hashed)
                versions.append(current)
        judged: dict[int, Judged] = {}
        for index, (positions, keys, versions) in compared.items():
            differences = check.compare(check.snapshots[index], keys, versions) if keys else {}
            for i, position in enumerate(positions):
                judged.setdefault(position, (hashes[position], {}))[1][index] = \
                    (versions[i], verdict(differences, i), differences.get(i))
        self._judged = judged
        return set()

    def _compare_lone(self, group: list[SourceRecord], check: SnapshotCheck, key_field: str,
                      index: int, version: VersionOf) -> set[int]:
        """``_compare`` for a flow's only import (the loop of an unchanged run: one record
        costs its key, its version and its share of one query): the unchanged positions."""
        owns = self._owns
        positions: list[int] = []
        keys: list[int] = []
        versions: list[int] = []
        for record in group:
            data = record.data
            if data is None or record.call is not None or \
                    (owns is not None and not owns(record.position)):
                continue
            key = data.get(key_field)
            if key is None or key == "":
                continue
            try:
                current = version(data)
            except UNWRITABLE:
                continue
            positions.append(record.position)
            keys.append(key_hash(key))
            versions.append(current)
        differences = check.compare(check.snapshots[index], keys, versions) if keys else {}
        self._judged = {positions[i]: (keys[i], {index: (versions[i], verdict(
            differences, i), sent)}) for i, sent in differences.items()}
        return set(positions).difference(self._judged)

    def _prepared_call(self, record: SourceRecord) -> Mapped:
        """A failed call sent again (a retry): no filter, no mapping, the same messageId."""
        assert record.call is not None
        try:
            body = compact(orjson.dumps(record.call, default=str))
        except UNWRITABLE as exc:
            unwritable = Refusal(FailedStep.IMPORT, f"the call cannot be written as JSON: {exc}")
            return [], lambda chunk: self._failed_all(chunk, record, unwritable)
        items = [(index, Item(record.position, record.ref, body))
                 for index, imp in enumerate(self.source.imports)
                 if imp.name == record.import_name]
        if not items:
            gone = Refusal(FailedStep.IMPORT,
                           f"the import '{record.import_name}' is no longer in the flow")
            return [], lambda chunk: self._failed_all(chunk, record, gone)
        return items, None

    def _failed_all(self, chunk: Chunk, record: SourceRecord, refusal: Refusal) -> None:
        """A record refused for every import (unreadable, a filter failed, a retried call)."""
        chunk.tally.add_for_every_import("failed", [imp.name for imp in self.source.imports])
        chunk.errors.append(ErrorRow(record.position, record.ref, refusal.step, refusal.reason,
                                     None, field=refusal.field, data=record.data,
                                     raw=record.raw))

    def _ignored(self, chunk: Chunk) -> None:
        chunk.tally.add_for_every_import("ignored", [imp.name for imp in self.source.imports])


def _unwritable(exc: BaseException) -> str:
    if isinstance(exc, RecursionError) or "ecursion" in str(exc):
        return "it is nested too deep"
    return f"{type(exc).__name__}: {exc}"


def _about(data: dict[str, Any], key_field: str | None, call: dict[str, Any]) -> bytes:
    """What the call for a deleted key will need: the key's value and the identity sent."""
    return orjson.dumps({"key": data.get(key_field) if key_field else None,
                         "userId": call.get("userId"), "anonymousId": call.get("anonymousId")},
                        default=str)


def version_of(imp: ImportMapping) -> VersionOf:
    """A diffed import's record versions."""
    version = getattr(imp, "version", None)
    if version is None:
        raise FatalError(f"the import '{imp.name}' compares records but has no version",
                         cause="internal")
    return version  # type: ignore[no-any-return]


def sync_mode(imp: ImportMapping) -> SyncMode:
    """Which records an import sends (an import that does not say: all of them)."""
    mode = getattr(imp, "sync", SyncMode.ALL)
    return mode if isinstance(mode, SyncMode) else SyncMode.ALL


def take_slot(slots: threading.Semaphore, stop: threading.Event) -> bool:
    """Wait for one of the chunks-ahead slots; False (no slot taken) once the run stops."""
    while not slots.acquire(timeout=0.2):
        if stop.is_set():
            return False
    return True


def compact(body: bytes) -> bytes:
    """orjson's bytes keep a buffer of at least 4 KB; a call waits in a batch, so keep an exact
    copy (measured: 4 KB per record held, up to 4 GB at 1M rows, before this)."""
    return bytes(memoryview(body))


def _as_written(body: bytes) -> bytes:
    return body

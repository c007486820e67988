"""The run engine: export -> filter -> map -> batch -> deliver, with checkpoints per chunk.

A producer thread reads the export, filters and maps each record, serialises each call once,
and cuts the stream into *chunks*: a chunk ends when a call no longer fits its import's batch,
so a chunk holds at most one batch per import. The event loop delivers chunks concurrently
(the governor keeps each connection within its limit) and commits them strictly in order:
counts, record errors and the checkpoint (the position after the chunk) in one transaction.
A run killed at any moment resumes at its checkpoint; the records after it are sent again with
the same messageIds, so the receiver deduplicates them. Nothing here touches the ORM.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from segbridge.apps.segment.limits import MAX_CALL_BYTES
from segbridge.core.errors import ApplicationError
from segbridge.flows.batching import Batcher, Item
from segbridge.flows.contracts import Export, MappingError, MapRecord, SourceRecord
from segbridge.flows.delivery import Delivery, Outcome, RunFailed
from segbridge.flows.message_ids import MessageIds
from segbridge.flows.runs import ErrorRow, RunStore, Tally

log = logging.getLogger(__name__)
CHUNK_SECONDS = 1.0  # a chunk is closed after this long even when not full (progress)
MAX_CHUNK_ERRORS = 1024  # ... or once it holds this many record errors (flat memory)
RAW_LIMIT = 4096


@dataclass
class ImportPlan:
    name: str
    call_type: str
    map_record: MapRecord
    ids: MessageIds
    delivery: Delivery
    connection_id: str


@dataclass
class RunPlan:
    run_id: str
    export: Export
    imports: list[ImportPlan]
    start: int = 0
    key_field: str | None = None
    filters: list[Callable[[Mapping[str, Any]], Any]] = field(default_factory=list)
    cursor_after: Callable[[], dict[str, Any] | None] | None = None
    chunks_ahead: int = 8


@dataclass
class Chunk:
    seq: int
    start: int
    end: int = 0
    batches: list[tuple[ImportPlan, list[Item]]] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    errors: list[ErrorRow] = field(default_factory=list)
    share: float | None = None  # of the input read when the chunk was closed (progress)


@dataclass
class RunResult:
    status: str
    message: str | None
    counts: Tally


OnProgress = Callable[[Tally, float | None], None]
"""Told after each committed chunk: the run's counts and the share of its input read."""
Effects = Callable[[Chunk], None]
"""How a record that did not simply map changes its chunk's counts and errors."""


class Producer:
    """Runs in its own thread: reads, filters, maps, serialises and cuts chunks.

    The loop is the run's throughput: a record that maps cleanly costs its mapping, its
    messageId, one orjson dump and one append; anything else (an unreadable record, a filter,
    a mapping error, a retried call) takes ``_process``, which returns its effects.
    """

    def __init__(self, plan: RunPlan, emit: Callable[[Chunk | None], None],
                 slots: threading.Semaphore, stop: threading.Event) -> None:
        self.plan = plan
        self.emit = emit
        self.slots = slots
        self.stop = stop
        self.error: BaseException | None = None
        self._seq = 0
        self._batchers = [Batcher() for _ in plan.imports]

    def run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # reported by the engine as the run's failure
            self.error = exc
        finally:
            self.emit(None)

    def _produce(self) -> None:
        plan, batchers = self.plan, self._batchers
        direct = not plan.filters
        chunk = self._new_chunk(plan.start)
        exported, position = 0, plan.start
        deadline = time.monotonic() + CHUNK_SECONDS
        for count, record in enumerate(plan.export.records(plan.start)):
            if not count & 255:
                if self.stop.is_set():
                    return
                if exported and (time.monotonic() > deadline
                                 or len(chunk.errors) >= MAX_CHUNK_ERRORS):
                    chunk = self._close(chunk, record.position, exported)
                    exported, deadline = 0, time.monotonic() + CHUNK_SECONDS
            data = record.data
            if direct and data is not None and record.call is None:
                items, effects = self._map_all(record, data)
            else:
                items, effects = self._process(record)
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

    def _new_chunk(self, start: int) -> Chunk:
        while not self.slots.acquire(timeout=0.2):
            if self.stop.is_set():
                break
        self._seq += 1
        return Chunk(seq=self._seq, start=start)

    def _close(self, chunk: Chunk, end: int, exported: int, *, last: bool = False) -> Chunk:
        chunk.end = end
        chunk.tally.add("exported", exported)
        chunk.share = self.plan.export.read_share()
        chunk.batches = [(imp, batcher.take())
                         for imp, batcher in zip(self.plan.imports, self._batchers, strict=True)]
        self.emit(chunk)
        return chunk if last else self._new_chunk(end)

    @staticmethod
    def _failed(chunk: Chunk, failures: list[ErrorRow]) -> None:
        for row in failures:
            chunk.tally.add("failed", import_name=row.import_name)
            chunk.errors.append(row)

    def _process(self, record: SourceRecord) -> tuple[list[tuple[int, Item]], Effects | None]:
        """A record off the direct path: unreadable, filtered, or a retried call."""
        if record.call is not None:
            return self._prepared_call(record)
        if record.data is None:
            return [], lambda chunk: self._unreadable(chunk, record)
        data = record.data
        try:
            if not all(keep(data) for keep in self.plan.filters):
                return [], self._ignored
        except Exception as exc:  # an expression error in a filter: the record fails
            reason = str(exc)  # (``exc`` is unbound once the except block ends)
            return [], lambda chunk: self._failed_all(chunk, record, "filter", None, reason)
        return self._map_all(record, data)

    def _map_all(self, record: SourceRecord,
                 data: dict[str, Any]) -> tuple[list[tuple[int, Item]], Effects | None]:
        """The record's call for every import; the imports that cannot map it fail it."""
        items: list[tuple[int, Item]] = []
        failures: list[ErrorRow] | None = None
        for index, imp in enumerate(self.plan.imports):
            outcome = self._map(imp, record, data)
            if isinstance(outcome, Item):
                items.append((index, outcome))
            else:
                failures = [*(failures or []), outcome]
        return items, partial(self._failed, failures=failures) if failures else None

    def _prepared_call(
        self, record: SourceRecord
    ) -> tuple[list[tuple[int, Item]], Effects | None]:
        """A failed call sent again (a retry): no filter, no mapping, the same messageId."""
        assert record.call is not None
        body = compact(orjson.dumps(record.call, default=str))
        items = [(index, Item(record.position, record.ref, body))
                 for index, imp in enumerate(self.plan.imports)
                 if imp.name == record.import_name]
        if not items:
            reason = f"the import '{record.import_name}' is no longer in the flow"
            return [], lambda chunk: self._failed_all(chunk, record, "import", None, reason)
        return items, None

    def _map(self, imp: ImportPlan, record: SourceRecord, data: dict[str, Any]) -> Item | ErrorRow:
        try:
            call = imp.map_record(data)
        except MappingError as exc:
            return ErrorRow(record.position, record.ref, "map", exc.reason, imp.name,
                            field=exc.field, data=data)
        key_field = self.plan.key_field
        key = data.get(key_field) if key_field is not None else None
        call["messageId"] = imp.ids.by_key(key) if key is not None and key != "" \
            else imp.ids.by_position(record.position, data)
        body = compact(orjson.dumps(call, default=str))
        if len(body) > MAX_CALL_BYTES:
            return ErrorRow(record.position, record.ref, "import",
                            f"the call is {len(body):,} bytes; Segment accepts at most "
                            f"{MAX_CALL_BYTES:,} bytes per call: map fewer or smaller fields",
                            imp.name, data=data)
        return Item(record.position, record.ref, body)

    def _unreadable(self, chunk: Chunk, record: SourceRecord) -> None:
        self._failed_all(chunk, record, "export", record.field, record.error or "unreadable")

    def _failed_all(self, chunk: Chunk, record: SourceRecord, step: str, field: str | None,
                    reason: str) -> None:
        chunk.tally.add_for_every_import("failed", [imp.name for imp in self.plan.imports])
        raw = record.raw[:RAW_LIMIT] if record.raw else None
        chunk.errors.append(ErrorRow(record.position, record.ref, step, reason, None,
                                     field=field, data=record.data, raw=raw))

    def _ignored(self, chunk: Chunk) -> None:
        chunk.tally.add_for_every_import("ignored", [imp.name for imp in self.plan.imports])


class Engine:
    """Executes one run on the current event loop."""

    def __init__(self, plan: RunPlan, store: RunStore,
                 on_progress: OnProgress | None = None) -> None:
        self.plan = plan
        self.store = store
        self.on_progress = on_progress
        self.totals = Tally()
        self._failure: str | None = None
        self._canceled = False
        self._stop = threading.Event()
        self._slots = threading.Semaphore(plan.chunks_ahead)
        self._done: dict[int, Chunk] = {}
        self._next_seq = 1
        self._committing = False

    async def execute(self) -> RunResult:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Chunk | None] = asyncio.Queue()
        def emit(chunk: Chunk | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)

        producer = Producer(self.plan, emit, self._slots, self._stop)
        thread = threading.Thread(target=producer.run, name=f"export-{self.plan.run_id}",
                                  daemon=True)
        thread.start()
        tasks: set[asyncio.Task[None]] = set()
        while (chunk := await queue.get()) is not None:
            task = asyncio.create_task(self._deliver(chunk))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        await asyncio.to_thread(thread.join)
        if producer.error is not None and self._failure is None:
            self._failure = _describe(producer.error)
        return self._result()

    async def _deliver(self, chunk: Chunk) -> None:
        if not self._stop.is_set():
            outcomes = await asyncio.gather(
                *(self._deliver_batch(imp, items) for imp, items in chunk.batches if items),
                return_exceptions=True)
            for (imp, _items), outcome in zip(
                    [b for b in chunk.batches if b[1]], outcomes, strict=True):
                self._merge(chunk, imp, outcome)
        chunk.batches = []  # delivered: the calls are not needed any more (errors keep theirs)
        self._done[chunk.seq] = chunk
        await self._advance()

    async def _deliver_batch(self, imp: ImportPlan, items: list[Item]) -> Outcome:
        return await imp.delivery.deliver(items)

    def _merge(self, chunk: Chunk, imp: ImportPlan, outcome: Outcome | BaseException) -> None:
        if isinstance(outcome, RunFailed):
            self._fail(f"{imp.name}: {outcome.error.message}")
            return
        if isinstance(outcome, BaseException):
            self._fail(f"{imp.name}: {_describe(outcome)}")
            return
        chunk.tally.add("sent", outcome.sent, imp.name)
        chunk.tally.add("retried", outcome.retried)
        chunk.tally.add("batches", 1)
        chunk.tally.add("bytes", outcome.bytes)
        for error in outcome.errors:
            chunk.tally.add("failed", 1, imp.name)
            chunk.errors.append(ErrorRow(
                error.item.position, error.item.ref, "import", error.reason, imp.name,
                http_status=error.status, retriable=error.retriable,
                data=orjson.loads(error.item.body)))

    def _fail(self, message: str) -> None:
        if self._failure is None:
            self._failure = message
        self._stop.set()

    async def _advance(self) -> None:
        """Commit finished chunks in order; the checkpoint only moves past finished work.

        One coroutine at a time commits (it goes on while the next chunk is finished); the
        others return at once, so no finished chunk waits in a queue of lock waiters."""
        if self._committing:
            return
        self._committing = True
        try:
            while self._next_seq in self._done:
                chunk = self._done.pop(self._next_seq)
                self._next_seq += 1
                if not (self._stop.is_set() and self._failure is not None):
                    # (a failed run keeps its checkpoint where delivery stopped)
                    await asyncio.to_thread(self.store.commit_chunk, chunk.end, chunk.tally,
                                            chunk.errors, chunk.share)
                    self._count(chunk.tally, chunk.share)
                    await self._check_canceled()
                self._slots.release()
        finally:
            self._committing = False

    def _count(self, tally: Tally, share: float | None) -> None:
        merged = tally.merged_into({**self.totals.totals, "imports": self.totals.imports})
        self.totals = Tally(totals={k: merged[k] for k in self.totals.totals},
                            imports=merged["imports"])
        if self.on_progress is not None:
            self.on_progress(self.totals, share)

    async def _check_canceled(self) -> None:
        if await asyncio.to_thread(self.store.status) == "canceling":
            self._canceled = True
            self._stop.set()

    def _result(self) -> RunResult:
        if self._failure is not None:
            return RunResult("failed", self._failure, self.totals)
        if self._canceled:
            return RunResult("canceled", "canceled by a user", self.totals)
        failed = self.totals.totals["failed"]
        if failed:
            return RunResult("completed_with_errors",
                             f"{failed} record error(s); see the run's errors", self.totals)
        return RunResult("succeeded", None, self.totals)


def compact(body: bytes) -> bytes:
    """orjson's bytes keep a buffer of at least 4 KB; a call waits in a batch, so keep an exact
    copy (measured: 4 KB per record held, up to 4 GB at 1M rows, before this)."""
    return bytes(memoryview(body))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApplicationError):
        return exc.message
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}"

"""The run engine: export -> filter -> map -> batch -> deliver, with checkpoints per chunk.

A producer (``runs.producer``: a thread, or N lane processes for large files, see
``runs.lanes``) reads the export, filters and maps each record, serialises each call once,
and cuts the stream into numbered *chunks*. The event loop delivers chunks concurrently (the
governor keeps each connection within its limit) and commits them strictly in order: counts,
record errors and the checkpoint (the position after the chunk) in one transaction. A run
killed at any moment resumes at its checkpoint; the records after it are sent again with the
same messageIds, so the receiver deduplicates them. Nothing here touches the ORM.

A run whose lease was lost (another process took it over: ``RunStore`` raises ``LeaseLost``,
or the executor's heartbeat says so) stops at once and commits nothing more: its new owner
goes on from the checkpoint. A run whose lanes kept dying fails as *crashed* (resumable).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal

import orjson
from sqlalchemy.exc import SQLAlchemyError

from segbridge.core.errors import ApplicationError, FailedStep, RetriableError
from segbridge.exports.contracts import MapRecord
from segbridge.runs.counts import ErrorRow, Tally
from segbridge.runs.diff import SyncMode, VersionOf
from segbridge.runs.diff_blocks import salt, settles
from segbridge.runs.diff_deletions import GONE_PAGE, DeletionSend, Gone, send_deletions
from segbridge.runs.diff_store import DiffRun
from segbridge.runs.lanes import MAX_LANE_RESTARTS, LaneDied, LaneReader, LaneSpec, SkipBlocks
from segbridge.runs.lifecycle import RunStatus
from segbridge.runs.message_ids import MessageIds
from segbridge.runs.producer import Chunk, Producer, Source
from segbridge.runs.store import CRASHED, SOURCE_UNAVAILABLE, LeaseLost, RunStore
from segbridge.sinks.calls import Item
from segbridge.sinks.contracts import Outcome, RunFailed, Sink

log = logging.getLogger(__name__)


@dataclass
class ImportPlan:
    name: str
    call_type: str
    map_record: MapRecord
    ids: MessageIds
    delivery: Sink  # the connection's application opened it (``apps.base.SinkOpener``)
    connection_id: str
    sync: SyncMode = SyncMode.ALL  # which records it sends (``runs.diff``)
    version: VersionOf | None = None  # a diffed import's record versions
    deleted: Any = None  # a diffed import's call for deleted keys, if it sends one


@dataclass
class RunPlan:
    run_id: str
    source: Source
    imports: list[ImportPlan]
    cursor_after: Callable[[], dict[str, Any] | None] | None = None
    chunks_ahead: int = 8
    lanes: LaneSpec | None = None  # when set, lane processes produce the chunks
    diff: DiffRun | None = None  # when an import sends only changed or new records
    failed_before: int = 0  # record errors committed before its checkpoint (a resumed or
    # taken-over run): they count for its end, as this execution's do


TAKEN_OVER_RESULT: Final = "taken_over"  # not a run status: this process lost the run to another


@dataclass
class RunResult:
    status: RunStatus | Literal["taken_over"]
    message: str | None
    counts: Tally
OnProgress = Callable[[Tally, float | None], None]
"""Told after each committed chunk: the run's counts and the share of its input read."""


class Engine:
    """Executes one run on the current event loop."""

    def __init__(self, plan: RunPlan, store: RunStore,
                 on_progress: OnProgress | None = None) -> None:
        self.plan = plan
        self.store = store
        self.on_progress = on_progress
        self.totals = Tally()
        self._failure: str | None = None
        self._lost: str | None = None
        self._canceled = False
        self._stop = threading.Event()
        self._slots = threading.Semaphore(plan.chunks_ahead)
        self._done: dict[int, Chunk] = {}
        self._next_seq = 1
        self._committing = False
        self._unsent: dict[int, set[tuple[int, int]]] = {}  # diffed calls that became errors
        self._checkpoint = plan.source.start  # and the share read: as last committed
        self._share: float | None = None

    async def execute(self) -> RunResult:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Chunk | None] = asyncio.Queue()
        def emit(chunk: Chunk | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)

        producer = self._producer(emit)
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
        if producer.error is not None and self._failure is None and self._lost is None:
            self._failure = self._producer_failure(producer.error)
        result = self._result()
        if self.plan.diff is not None:
            await self._end_diff(self.plan.diff, result)
        return result

    async def _end_diff(self, diff: DiffRun, result: RunResult) -> None:
        """A run that finished without failing advances its snapshots (and counts the keys
        it did not see, sending their calls first for an import that asks: ``runs.
        diff_deletions``); a canceled one drops what it staged; a failed one keeps it (it may
        be resumed)."""
        if result.status in (RunStatus.SUCCEEDED, RunStatus.COMPLETED_WITH_ERRORS):
            deleted = await asyncio.to_thread(diff.count_deleted)
            sent = await self._send_deletions(diff, result)
            if sent is None:  # (failed or taken over: the snapshots stay as they were)
                return
            await asyncio.to_thread(diff.promote)
            _add_counts(deleted, sent.tally)
            if deleted.imports:
                await asyncio.to_thread(self.store.commit_chunk, self._checkpoint, deleted, [],
                                        self._share)
                self._count(deleted, self._share)
                result.counts = self.totals
        elif result.status == RunStatus.CANCELED:
            await asyncio.to_thread(diff.discard)

    async def _send_deletions(self, diff: DiffRun, result: RunResult) -> DeletionSend | None:
        """Send the calls of the deleted keys of each import that asks for them, through its
        sink; None when the run cannot go on (``result`` then says why: the run failed, or
        was taken over)."""
        done = DeletionSend()
        for index, imp in diff.deleting().items():
            plan = self.plan.imports[index]
            assert imp.deleted is not None
            try:
                one = await send_deletions(
                    imp.name, imp.deleted, plan.ids,
                    partial(self._gone_page, diff, imp.snapshot), plan.delivery.deliver,
                    partial(self._keep, diff, imp.snapshot))
            except LeaseLost as lost:
                self.lose_lease(str(lost))
                result.status, result.message = TAKEN_OVER_RESULT, str(lost)
                return None
            except Exception as exc:  # (RunFailed: a rejected key, a wrong endpoint)
                message = exc.error.message if isinstance(exc, RunFailed) else _describe(exc)
                result.status = RunStatus.FAILED
                result.message = (f"{imp.name}: the calls for deleted keys could not be sent: "
                                  f"{message}; the next run sends them again")
                return None
            _add_counts(done.tally, one.tally)
            if one.first_error is not None:
                done.first_error = done.first_error or f"{imp.name}: {one.first_error}"
        failed = sum(per.get("deletions_failed", 0) for per in done.tally.imports.values())
        if failed:
            _note(result, f"{failed} call(s) for deleted keys failed ({done.first_error}); "
                          "those keys stay in the snapshot and are sent again next run")
        for name, (gone, why) in diff.held_back.items():
            _note(result, f"{name}: {why}, so the calls for its {gone:,} deleted key(s) were "
                          "not sent (a key is deleted only when every record was read); they "
                          "are sent by the next run that reads every record")
        return done

    @staticmethod
    async def _gone_page(diff: DiffRun, snapshot: int, after: int | None) -> list[Gone]:
        return await asyncio.to_thread(diff.store.gone_page, snapshot, after, GONE_PAGE)

    @staticmethod
    async def _keep(diff: DiffRun, snapshot: int, keys: list[int]) -> None:
        await asyncio.to_thread(diff.store.keep, snapshot, keys)

    def lose_lease(self, message: str) -> None:
        """Another process owns the run now: stop, and commit nothing more."""
        if self._lost is None:
            log.warning("run %s: %s; stopping here", self.plan.run_id, message)
            self._lost = message
        self._stop.set()

    def _producer_failure(self, error: BaseException) -> str:
        if isinstance(error, LaneDied):
            return (f"{CRASHED}{error.message}, after {MAX_LANE_RESTARTS} lane restarts; "
                    "nothing was lost: resume the run to go on from its checkpoint "
                    f"(segbridge runs resume {self.plan.run_id})")
        if isinstance(error, RetriableError):  # the source stayed out of reach: resumable
            return (f"{SOURCE_UNAVAILABLE}{_describe(error)}; nothing was lost: resume the run "
                    "once the source answers, to go on from its checkpoint "
                    f"(segbridge runs resume {self.plan.run_id})")
        return _describe(error)

    def _producer(self, emit: Callable[[Chunk | None], None]) -> Producer | LaneReader:
        if self.plan.lanes is not None:
            return LaneReader(self.plan.lanes, emit, self._slots, self._stop,
                              self._block_skipper())
        return Producer(self.plan.source, emit, self._slots, self._stop)

    async def _deliver(self, chunk: Chunk) -> None:
        chunk.delivered = not self._stop.is_set()
        if chunk.delivered:
            batches = [(self.plan.imports[index], items)
                       for index, items in chunk.batches if items]
            outcomes = await asyncio.gather(
                *(self._deliver_batch(imp, items) for imp, items in batches),
                return_exceptions=True)
            for (imp, _items), outcome in zip(batches, outcomes, strict=True):
                self._merge(chunk, imp, outcome)
                if imp.sync is not SyncMode.ALL and isinstance(outcome, Outcome):
                    self._note_unsent(chunk, imp, outcome)
        chunk.batches = []  # delivered: the calls are not needed any more (errors keep theirs)
        self._done[chunk.seq] = chunk
        await self._advance()

    async def _deliver_batch(self, imp: ImportPlan, items: Sequence[Item]) -> Outcome:
        return await imp.delivery.deliver(items)

    def _merge(self, chunk: Chunk, imp: ImportPlan, outcome: Outcome | BaseException) -> None:
        if isinstance(outcome, LeaseLost):  # (pausing the run found it taken over)
            self.lose_lease(str(outcome))
            return
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
                error.item.position, error.item.ref, FailedStep.IMPORT, error.reason, imp.name,
                http_status=error.status, retriable=error.retriable,
                data=orjson.loads(error.item.body)))

    def _note_unsent(self, chunk: Chunk, imp: ImportPlan, outcome: Outcome) -> None:
        """A diffed call that became a record error is not staged (it is diffed again)."""
        if outcome.errors:
            index = self.plan.imports.index(imp)
            self._unsent.setdefault(chunk.seq, set()).update(
                (index, error.item.position) for error in outcome.errors)

    def _block_skipper(self) -> SkipBlocks | None:
        """How the lanes learn which blocks they need not read: a diff sync of one import
        decided by the file alone (``runs.diff_blocks``)."""
        spec, diff = self.plan.lanes, self.plan.diff
        if spec is None or diff is None or not settles(
                len(self.plan.imports), len(diff.imports), spec.filters, spec.lookups,
                any(imp.deleted is not None for imp in diff.imports.values())):
            return None
        keyed = salt(spec.export, spec.imports, spec.key_field, spec.limits)
        return lambda path, found: diff.skip_blocks(path, found, keyed)

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
                if chunk.delivered and self._lost is None \
                        and not (self._stop.is_set() and self._failure is not None):
                    # (a failed run keeps its checkpoint where delivery stopped; a chunk that
                    # came after a cancel was not sent, so it is not counted either)
                    await self._commit(chunk)
                self._slots.release()
        finally:
            self._committing = False

    async def _commit(self, chunk: Chunk) -> None:
        unsent = self._unsent.pop(chunk.seq, set())
        try:
            if chunk.seen and self.plan.diff is not None:  # (staged first: a crash between
                # the two and the resumed run drops it, past its checkpoint, and does it again)
                await asyncio.to_thread(self.plan.diff.stage, chunk, unsent)
            await asyncio.to_thread(self.store.commit_chunk, chunk.end, chunk.tally,
                                    chunk.errors, chunk.share)
        except LeaseLost as lost:
            self.lose_lease(str(lost))
            return
        except SQLAlchemyError as exc:  # the run's record could not be written (the database
            # ended a transaction this process sat in for two leases, or went away): nothing
            # after this chunk may be committed, or its counts and errors would be lost while
            # the checkpoint moved past it. The run stops here; with no heartbeat any more it
            # is taken over and resumed from its checkpoint by a live process.
            self.lose_lease(f"its progress could not be saved ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200]}); a live process resumes it "
                            "from its last checkpoint")
            return
        self._checkpoint, self._share = chunk.end, chunk.share
        if self.plan.diff is not None:
            self.plan.diff.note_block(chunk, bool(unsent))
        self._count(chunk.tally, chunk.share)
        await self._check_canceled()

    def _count(self, tally: Tally, share: float | None) -> None:
        merged = tally.merged_into({**self.totals.totals, "imports": self.totals.imports})
        self.totals = Tally(totals={k: merged[k] for k in self.totals.totals},
                            imports=merged["imports"])
        if self.on_progress is not None:
            self.on_progress(self.totals, share)

    async def _check_canceled(self) -> None:
        if await asyncio.to_thread(self.store.status) == RunStatus.CANCELING:
            self._canceled = True
            self._stop.set()

    def _result(self) -> RunResult:
        if self._lost is not None:
            return RunResult(TAKEN_OVER_RESULT, self._lost, self.totals)
        if self._failure is not None:
            return RunResult(RunStatus.FAILED, self._failure, self.totals)
        if self._canceled:
            return RunResult(RunStatus.CANCELED, "canceled by a user", self.totals)
        failed = self.totals.totals["failed"] + self.plan.failed_before
        if failed:
            return RunResult(RunStatus.COMPLETED_WITH_ERRORS,
                             f"{failed} record error(s); see the run's errors", self.totals)
        return RunResult(RunStatus.SUCCEEDED, None, self.totals)


def _note(result: RunResult, note: str) -> None:
    result.message = f"{result.message}; {note}" if result.message else note


def _add_counts(into: Tally, more: Tally) -> None:
    """``more``'s counts added to ``into`` (totals, and each import's own counts)."""
    for key, value in more.totals.items():
        if value:
            into.add(key, value)
    for name, per in more.imports.items():
        for key, value in per.items():
            into.add_to_import(key, value, name)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApplicationError):
        return exc.message
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}"

"""Receiver workers: batches read (gunzip, JSON, validation, stamping) in other processes.

One receiver process is bounded near 4.5 us per event, most of it reading a batch: inflating,
parsing and validating 2,000 calls and serialising them stamped. None of that needs the
receiver's state, so with ``workers`` (``segbridge sandbox --workers N``) a batch request's
body goes to one of N worker processes and comes back as a ``PreparedRequest`` (columns of
strings and bytes: cheap to pickle). Everything with state stays in the one front process, in
the order it had: sources and write keys, faults, duplicates, counters, the Debugger and the
archive, so the receiver answers exactly as it does alone.

What goes to a worker: a ``/v1/batch`` or ``/v1/import`` request that names its source by
HTTP Basic (the official clients all do). A body's ``writeKey`` may bring a fault of another
account that must be applied before the calls are read (its latency delays the receipt time):
such requests, and single calls (32 KB at most), are read in the front process, with the same
function (``read_request``).

Workers are started (spawned: never forked from a server with running threads) when the
receiver starts, with the collector tuned as the front process; they are stopped when the
receiver closes.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime

from segbridge.sandbox.calls import (
    PreparedRequest,
    TrackingError,
    prepare_batch,
    prepare_single,
)
from segbridge.sandbox.limits import BATCH_PATHS
from segbridge.sandbox.serving import tune_collector
from segbridge.sandbox.timestamps import Receipt
from segbridge.sandbox.wire import inflate, parse_json

Refusal = tuple[int, str, str]  # a TrackingError as plain values (exceptions pickle poorly)
_UNREAD: Refusal = (400, "invalid_body", "the body could not be read")
logger = logging.getLogger("segbridge.sandbox")


@dataclass(frozen=True, slots=True)
class Reading:
    """What reading a body gave, step by step, so that the front process answers in the
    order it always has: ``unreadable`` (gzip, JSON) first, then the write key (from
    ``body_key``), faults, and only then ``refused`` (the calls' validation)."""

    size: int = 0  # bytes of JSON
    body_key: str | None = None  # the body's ``writeKey``, when it is a string
    prepared: PreparedRequest | None = None
    unreadable: Refusal | None = None
    refused: Refusal | None = None

    def check_readable(self) -> None:
        """Raise the refusal of a body that is not gzip or JSON as it should be."""
        if self.unreadable is not None:
            raise TrackingError(*self.unreadable)

    def calls(self) -> PreparedRequest:
        """The validated request, or its refusal raised."""
        if self.prepared is None:
            raise TrackingError(*(self.refused or self.unreadable or _UNREAD))
        return self.prepared


def _refusal(err: TrackingError) -> Refusal:
    return (err.status, err.code, err.message)


def read_request(
    raw: bytes,
    encoding: bytes,
    path: str,
    limit: int,
    received_at: datetime,
    lenient: bool,
) -> Reading:
    """Inflate, parse, validate and stamp one body (in a worker or in the front process)."""
    try:
        data = inflate(raw, {b"content-encoding": encoding}, limit)
        body = parse_json(data)
    except TrackingError as err:
        return Reading(unreadable=_refusal(err))
    body_key = body.get("writeKey") if isinstance(body, dict) else None
    key = body_key if isinstance(body_key, str) else None
    receipt = Receipt(received_at)
    try:
        if path in BATCH_PATHS:
            prepared = prepare_batch(body, receipt, len(data), lenient=lenient)
        else:
            prepared = prepare_single(body, path, receipt, lenient=lenient)
    except TrackingError as err:
        return Reading(len(data), key, refused=_refusal(err))
    return Reading(len(data), key, prepared)


def _ready() -> bool:
    return True


def _start_worker() -> None:
    """A worker leaves Ctrl+C to the front process, which stops it once in-flight batches
    are answered (a worker ended by the terminal's SIGINT would break them)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_collector()


class Workers:
    """A pool of worker processes reading batch bodies (see the module's docstring).

    A worker that dies (killed, out of memory) breaks the whole pool: the batches it was
    reading are read again in the front process, and a new pool is started for the next.
    """

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("workers must be at least 1")
        self.count = count
        self._pool = self._new_pool()
        self._closed = False

    def _new_pool(self) -> ProcessPoolExecutor:
        spawn = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.count, mp_context=spawn, initializer=_start_worker)

    def start(self) -> None:
        """Start every worker now (each is spawned on demand otherwise: a slow first batch)."""
        for started in [self._pool.submit(_ready) for _ in range(self.count)]:
            started.result()

    async def read(
        self,
        raw: bytes,
        encoding: bytes,
        path: str,
        limit: int,
        received_at: datetime,
        lenient: bool,
    ) -> Reading:
        pool = self._pool
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                pool, read_request, raw, encoding, path, limit, received_at, lenient
            )
        except BrokenProcessPool:
            self._replace(pool)
        return read_request(raw, encoding, path, limit, received_at, lenient)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Start a new pool in place of ``broken`` (once, however many batches it broke)."""
        if self._pool is broken and not self._closed:
            logger.warning("a receiver worker process ended unexpectedly; starting new workers")
            self._pool = self._new_pool()
            broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (a batch being read is finished first); safe more than once."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)

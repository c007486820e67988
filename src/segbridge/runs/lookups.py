"""Lookup steps in a run or a preview: records enriched, in batches, from another connection.

Lookups come before the filters (a filter may test a looked-up value, e.g. ``customer.plan ==
'pro'``), in the order the flow lists them. The producer reads ``BATCH_RECORDS`` records
ahead (``LookupSteps.batched``); for each lookup, the distinct keys of that batch that the
cache does not hold go to the application's ``find_many`` (``batch_size`` keys per call: a
database answers each call with one ``IN (...)`` query, an HTTP API with one request per key,
several at once up to the connection's concurrency level), and each record of the batch gets
its answer under the lookup's ``name`` (None without one, for ``leave_empty``). A record
without an answer whose lookup says ``fail_record`` (a record error) or ``ignore_record``
(an ignored record) is kept aside by record, until ``LookupSteps.enrich`` hands the producer
its verdict, in about no time (measured: ~1 us a record, lookups included). The verdict stays
with its record whatever the producer reads ahead of it: a diffed flow compares 2,048
records (two batches and more) before it maps the first.

The cache (``KeyCache``) is an LRU bounded by ``cache.size`` keys whose answers expire after
``cache.ttl_seconds``: a 1M-record run over 10,000 distinct customers asks for each about
once. A batch's own answers are held for the batch, so a cache smaller than a batch's keys
never asks twice within it.

A lookup whose system cannot be reached (``RetriableError``) is tried again
(``RETRY_DELAYS``; a preview tries once), then the run fails with the application's message;
any other failure (``FatalError``: the query is wrong) fails the run at once. Nothing here
opens connections: the plan and the preview give ``LookupStep``s their opened ``Lookup``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from segbridge.core.errors import FailedStep, FatalError, RetriableError

if TYPE_CHECKING:  # a lane process imports this module: keep it light
    from segbridge.apps.base import Lookup, LookupKey, LookupRequest, LookupRow
    from segbridge.exports.contracts import SourceRecord

BATCH_RECORDS = 1000  # records read ahead, whose distinct keys are looked up together
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds between tries of a lookup that cannot connect
LOOKUP_STEP = FailedStep.LOOKUP  # the step of a lookup's record error
DEFAULT_CACHE_SIZE = 10_000  # keys (the flow document's default too)
DEFAULT_CACHE_TTL = 600  # seconds
MISSING = object()  # a key the cache does not hold (None is an answer: nothing found)


class KeyCache:
    """Answers by key: at most ``size`` keys (least recently used out first), each for
    ``ttl_seconds`` (0: nothing kept)."""

    __slots__ = ("_clock", "_entries", "size", "ttl")

    def __init__(self, size: int, ttl_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[LookupKey, tuple[float, LookupRow | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: LookupKey) -> Any:
        """The answer for ``key``, or MISSING (never held, evicted or expired)."""
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        if entry[0] <= self._clock():
            del self._entries[key]
            return MISSING
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: LookupKey, row: LookupRow | None) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (self._clock() + self.ttl, row)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


@dataclass
class LookupStats:
    """What a lookup did: keys asked of its application, and cache hits."""

    asked: int = 0
    calls: int = 0
    hits: int = 0


@dataclass(frozen=True, slots=True)
class Missed:
    """A record a lookup found nothing for: failed (a reason) or ignored (``reason`` None)."""

    reason: str | None
    field: str | None = None


@dataclass
class LookupStep:
    """One lookup of a flow, opened: where its key comes from, what to do without a result."""

    name: str
    params: tuple[tuple[str, ...], ...]  # each parameter's record field, as a path
    lookup: Lookup
    on_missing: str = "leave_empty"
    cache: KeyCache = field(default_factory=lambda: KeyCache(DEFAULT_CACHE_SIZE,
                                                             DEFAULT_CACHE_TTL))
    stats: LookupStats = field(default_factory=LookupStats)
    sleep: Callable[[float], None] = time.sleep
    retry_delays: tuple[float, ...] = RETRY_DELAYS
    # the application and the request it was opened with (a lane opens its own from them)
    opened_by: tuple[str, LookupRequest] | None = None

    def key_of(self, data: Mapping[str, Any]) -> LookupKey | None:
        """The record's key (None: a parameter's field is missing or empty, or holds a list
        or an object, which is no key)."""
        if len(self.params) == 1 and len(self.params[0]) == 1:  # the usual: one plain field
            value = data.get(self.params[0][0])
            return None if value is None or value == "" or isinstance(value, dict | list) \
                else (value,)
        key = []
        for path in self.params:
            value = data
            for part in path:
                value = value.get(part) if isinstance(value, Mapping) else None
            if value is None or value == "" or isinstance(value, dict | list):
                return None
            key.append(value)
        return tuple(key)

    def prepare(self, records: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], Missed]]:
        """Each record's answer under ``name``: the cache's, the rest asked at once; the
        records without one that ``on_missing`` fails or ignores are returned, each with
        its Missed."""
        keys = [self.key_of(data) for data in records]
        batch = self._answers(keys)
        name, leave = self.name, self.on_missing == "leave_empty"
        missed: list[tuple[dict[str, Any], Missed]] = []
        for data, key in zip(records, keys, strict=True):
            row = batch.get(key) if key is not None else None
            if row is not None or leave:
                data[name] = row
            else:
                missed.append((data, self._missing(key)))
        return missed

    def _answers(self, keys: Iterable[LookupKey | None]) -> dict[LookupKey, LookupRow | None]:
        batch: dict[LookupKey, LookupRow | None] = {}
        wanted: list[LookupKey] = []
        cache = self.cache
        for key in keys:
            if key is None or key in batch:
                continue
            held = cache.get(key)
            if held is MISSING:
                batch[key] = None
                wanted.append(key)
            else:
                batch[key] = held
                self.stats.hits += 1
        size = max(1, self.lookup.batch_size)
        for low in range(0, len(wanted), size):
            for key, row in self._find(wanted[low:low + size]).items():
                batch[key] = row
                cache.put(key, row)
        return batch

    def _find(self, keys: Sequence[LookupKey]) -> Mapping[LookupKey, LookupRow | None]:
        self.stats.asked += len(keys)
        for delay in (*self.retry_delays, None):
            self.stats.calls += 1
            try:
                return self.lookup.find_many(keys)
            except RetriableError as exc:
                if delay is None:
                    tries = len(self.retry_delays) + 1
                    raise RetriableError(f"The lookup '{self.name}' failed (tried {tries} "
                                         f"time{'s' if tries > 1 else ''}): {exc.message}",
                                         cause=exc.cause) from None
                self.sleep(delay)
            except FatalError as exc:
                raise FatalError(f"The lookup '{self.name}' failed: {exc.message}",
                                 cause=exc.cause) from None
        raise AssertionError("unreachable")

    def _missing(self, key: LookupKey | None) -> Missed:
        if self.on_missing == "ignore_record":
            return Missed(None)
        return Missed(self._no_result(key), self._fields())

    def _no_result(self, key: LookupKey | None) -> str:
        if key is None:
            return (f"the lookup '{self.name}' has no key: the record has no value in "
                    f"{self._fields()}")
        shown = ", ".join(repr(value) for value in key)
        return f"the lookup '{self.name}' found nothing for {self._fields()} = {shown}"

    def _fields(self) -> str:
        return ", ".join(".".join(path) for path in self.params)


class LookupSteps:
    """A flow's lookups, in order, as the producer and the preview use them."""

    def __init__(self, steps: Sequence[LookupStep],
                 batch_records: int = BATCH_RECORDS) -> None:
        self.steps = list(steps)
        self.batch_records = max(1, batch_records)
        # the prepared records a lookup fails or ignores, until ``enrich`` hands the verdict
        # over: by id() of the record's data, held here (so no other record takes its id)
        self._missed: dict[int, tuple[dict[str, Any], Missed]] = {}

    def __bool__(self) -> bool:
        return bool(self.steps)

    def batched(self, records: Iterator[SourceRecord],
                wanted: Callable[[int], bool] | None = None) -> Iterator[SourceRecord]:
        """The records, each batch's keys looked up before its records come out (only the
        records at the positions ``wanted`` says: a lane's own)."""
        batch: list[SourceRecord] = []
        for record in records:
            if wanted is not None and not wanted(record.position):
                if batch:  # the end of a block of this lane's
                    self.prepare(batch)
                    yield from batch
                    batch = []
                yield record  # another lane's: passed on, not looked up
                continue
            batch.append(record)
            if len(batch) >= self.batch_records:
                self.prepare(batch)
                yield from batch
                batch = []
        if batch:
            self.prepare(batch)
            yield from batch

    def prepare(self, records: Sequence[SourceRecord]) -> None:
        """Look up the keys of these records (of those with data and no prepared call), and
        put the answers in them. A lookup's key may come from an earlier lookup's answer:
        each lookup enriches the batch's records before the next one reads its keys. The
        records a lookup fails or ignores are kept, each with the first lookup's Missed,
        until ``enrich`` is asked about them (a later batch adds to them)."""
        datas = [record.data for record in records
                 if record.data is not None and record.call is None]
        kept = self._missed
        for step in self.steps:
            for data, missed in step.prepare(datas):
                kept.setdefault(id(data), (data, missed))

    def enrich(self, data: dict[str, Any]) -> Missed | None:
        """None: the record holds every lookup's answer; else the first lookup's Missed,
        handed over once (the record is forgotten here: ask once per prepared record)."""
        kept = self._missed
        if not kept:
            return None
        missed = kept.pop(id(data), None)
        return missed[1] if missed is not None else None

    def stats(self) -> dict[str, LookupStats]:
        return {step.name: step.stats for step in self.steps}

    def close(self) -> None:
        for step in self.steps:
            step.lookup.close()


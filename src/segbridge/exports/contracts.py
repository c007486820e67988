"""The contracts between the parts of a flow: exports yield SourceRecords, a compiled mapping
turns a record's data into a Segment call, and the engine batches and sends the calls.

    export (files, database)  --SourceRecord-->  mapping  --call dict-->  batcher -> sender

Exports are synchronous iterators (files and DB cursors are), read in a worker thread by the
engine; they must stream (never load a whole file or result set) and be resumable from a
position. Nothing here touches the ORM or does per-record SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from segbridge.core.errors import RecordError


@dataclass(slots=True)
class SourceRecord:
    """One record as an export produced it.

    position: 0-based ordinal of the record in this export's output, stable when the same
        input is exported again (so a resumed run can skip what it already delivered).
    ref: where the record came from, for people: "line 12", "row 7", "id=42".
    data: the record, or None when it could not be read.
    error: why it could not be read (malformed CSV line, invalid UTF-8, not a JSON object...).
    field: the field the error is about, when there is one.
    raw: the raw text of an unreadable record (truncated to a few KB), kept with the error.
    cursor: for incremental database exports, the value of the cursor column of this record.
    call, import_name: set only when a failed call is retried: the call as it was (or as the
        user edited it), sent again to that import without mapping, keeping its messageId.
    """

    position: int
    ref: str
    data: dict[str, Any] | None
    error: str | None = None
    field: str | None = None
    raw: str | None = None
    cursor: Any = None
    call: dict[str, Any] | None = None
    import_name: str | None = None


@dataclass(frozen=True, slots=True)
class NotRead:
    """Positions ``position`` to ``end - 1`` that a lane's reader skipped without reading: a
    block its boundaries name (a diff sync's block whose every record the snapshot holds,
    ``runs.diff_blocks``), given only while the open file is the one scanned."""

    position: int
    end: int


class Spans(Protocol):
    """The positions a reader wants, as ranges (a lane's blocks)."""

    def around(self, position: int) -> tuple[int, int]:
        """The first wanted range [low, high) that ends after ``position``."""
        ...


@runtime_checkable
class SpanReader(Protocol):
    """An export that can leave out, cheaply, the records outside some spans (CSV: it parses
    them, to count positions and lines, but builds no record)."""

    def records_in(self, spans: Spans) -> Iterator[SourceRecord | NotRead]:
        """The records in the spans, in order (unreadable records may come from outside),
        and the blocks not read in their place (``NotRead``)."""
        ...


class Export(Protocol):
    """A source step: streams records, starting at a position.

    An export whose records come in bursts with waits between them (the pages of an API) says
    so with a class attribute ``slow = True``: the producer then looks at the clock at every
    record rather than every 256, so a chunk (and the run's checkpoint) closes on time."""

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        """Yield records in order, skipping the first ``start_position`` ones cheaply."""
        ...

    def read_share(self) -> float | None:
        """How much of the input has been read, from 0 to 1 (None when it cannot be known,
        as for a query's results); asked between two records by the reading thread."""
        ...


class MappingError(RecordError):
    """A record cannot be mapped: names the field and the reason (becomes a record error)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


MapRecord = Callable[[dict[str, Any]], dict[str, Any]]
"""A compiled mapping: record data -> a Segment call dict with "type" and the mapped fields
(userId, anonymousId, event, name, groupId, previousId, timestamp, traits/properties, context,
integrations). It raises MappingError for a record that cannot be mapped. It does not set
messageId or sentAt: the engine does."""

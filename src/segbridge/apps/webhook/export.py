"""The records a run of a webhook flow delivers: those its listener had committed when the
run was created, in the order they arrived.

A run's definition holds them under ``export.received`` as ``[record id, payload]`` pairs (the
delivery that creates the run puts them there, in the transaction that queues it), so a
resumed run reads exactly the same records. A record's position is its row id: positions
grow, a checkpoint skips what was delivered, and the messageId of a record (its position and
content, or its ``key_field``) is the same in every run that sends it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from segbridge.exports.contracts import SourceRecord

RECEIVED = "received"  # the key of the records in a run's export section
CURSOR = "webhook_through"  # the flow's cursor: the last record id a finished run delivered


class ReceivedExport:
    """The received records of one run, as SourceRecords positioned at their row ids."""

    def __init__(self, received: Sequence[Sequence[Any]]) -> None:
        self._received = received
        self._read = 0

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        for index, (record_id, payload) in enumerate(self._received):
            self._read = index + 1
            if record_id < start_position:
                continue
            yield SourceRecord(int(record_id), f"webhook record {record_id}", dict(payload))

    def read_share(self) -> float | None:
        return self._read / len(self._received) if self._received else 1.0

    def last_id(self) -> int | None:
        return int(self._received[-1][0]) if self._received else None

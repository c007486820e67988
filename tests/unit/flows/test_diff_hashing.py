"""Diff syncs without a database: what makes a record changed (its call as mapped, not its raw
columns), the messageId of each version of a record, and the producer noting diffed records
in their chunk."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import orjson

from segbridge.core.errors import FailedStep
from segbridge.exports.contracts import SourceRecord
from segbridge.mapping import compile_mapping
from segbridge.runs.diff import SyncMode, Verdict, call_hash, is_sent, key_hash, verdict
from segbridge.runs.message_ids import MessageIds
from segbridge.runs.producer import Chunk, CompiledImport, Producer, RecordStep, Refusal, Source

MAPPING = {"userId": "customer", "event": {"constant": "Order Completed"},
           "properties": {"fields": {"total": "total"}}}


def orders(sync: SyncMode = SyncMode.CHANGED) -> CompiledImport:
    return CompiledImport("Orders", compile_mapping("track", MAPPING),
                          MessageIds("f1", "Orders", "track"), sync)


def diffed(data: dict[str, object], position: int = 0) -> tuple[dict[str, object], int, int]:
    outcome = RecordStep([], "id").diff_call(orders(), position, data)
    assert not isinstance(outcome, Refusal), outcome
    call, body, key, version = outcome
    assert orjson.loads(body) == call
    return call, key, version


def test_a_column_the_mapping_does_not_read_does_not_change_the_record() -> None:
    record = {"id": 7, "customer": "c7", "total": "10.00", "note": "first"}
    call, _key, version = diffed(record)
    again_call, _key, again = diffed({**record, "note": "edited", "extra": [1, 2]})
    assert again == version
    assert again_call["messageId"] == call["messageId"]


def test_a_mapped_change_makes_a_new_version_with_a_new_message_id() -> None:
    record = {"id": 7, "customer": "c7", "total": "10.00"}
    call, key, version = diffed(record)
    changed_call, changed_key, changed = diffed({**record, "total": "11.00"})
    assert changed_key == key and changed != version
    assert changed_call["messageId"] != call["messageId"]
    # the same version of the record gets the same id wherever it sits in the input
    assert diffed(record, position=99)[0]["messageId"] == call["messageId"]


def test_the_hash_is_of_the_call_without_its_message_id_and_ignores_key_order() -> None:
    call = {"type": "track", "userId": "c1", "event": "E", "properties": {"a": 1, "b": 2}}
    reordered = {"properties": {"b": 2, "a": 1}, "event": "E", "userId": "c1", "type": "track"}
    assert call_hash(call) == call_hash(reordered)
    assert call_hash(call) != call_hash({**call, "userId": "c2"})
    assert key_hash(7) == key_hash("7") != key_hash("8")  # a key is compared as its text


def test_verdicts_and_what_each_mode_sends() -> None:
    assert verdict(None, 5) is Verdict.NEW
    assert verdict(5, 5) is Verdict.UNCHANGED
    assert verdict(4, 5) is Verdict.CHANGED
    assert is_sent(SyncMode.CHANGED, Verdict.CHANGED)
    assert not is_sent(SyncMode.NEW, Verdict.CHANGED)
    assert is_sent(SyncMode.NEW, Verdict.NEW)
    assert not is_sent(SyncMode.CHANGED, Verdict.UNCHANGED)


def test_a_record_without_a_key_is_a_record_error_saying_what_to_do() -> None:
    refused = RecordStep([], "id").diff_call(orders(), 0, {"id": "", "customer": "c"})
    assert isinstance(refused, Refusal)
    assert refused.step is FailedStep.MAP and refused.field == "id"
    assert "key field 'id'" in refused.reason and "sync: all" in refused.reason


class ListExport:
    def __init__(self, items: list[SourceRecord]) -> None:
        self.items = items

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        yield from (r for r in self.items if r.position >= start_position)

    def read_share(self) -> float | None:
        return None


def test_the_producer_notes_each_diffed_record_and_not_those_of_a_sync_all_import() -> None:
    items = [SourceRecord(i, f"line {i + 2}", {"id": i, "customer": f"c{i}", "total": "1"})
             for i in range(5)]
    everything = CompiledImport("All", compile_mapping("track", MAPPING),
                                MessageIds("f1", "All", "track"))
    chunks: list[Chunk] = []
    producer = Producer(Source(export=ListExport(items), imports=[everything, orders()],
                               key_field="id"),
                        lambda chunk: chunks.append(chunk) if chunk else None, None,
                        threading.Event())
    producer.run()

    assert producer.error is None
    seen = [entry for chunk in chunks for entry in chunk.seen]
    assert [(index, position) for index, position, _k, _c in seen] == [(1, p) for p in range(5)]
    assert {key for _i, _p, key, _c in seen} == {key_hash(i) for i in range(5)}
    sent = [item for chunk in chunks for index, batch in chunk.batches for item in batch]
    assert len(sent) == 10  # both imports' calls: the engine compares the diffed ones

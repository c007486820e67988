"""Diff syncs without a database: what makes a record changed (the fields its mapping reads,
and the mapping), the messageId of each version of a record, and the producer comparing
records with a snapshot before mapping them."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import orjson

from segbridge.core.errors import FailedStep
from segbridge.exports.contracts import SourceRecord
from segbridge.mapping import compile_mapping
from segbridge.runs.diff import (
    Differences,
    SnapshotCheck,
    SyncMode,
    Verdict,
    is_sent,
    key_hash,
    verdict,
    version_hasher,
)
from segbridge.runs.message_ids import MessageIds
from segbridge.runs.producer import (
    Chunk,
    CompiledImport,
    Lane,
    Producer,
    RecordStep,
    Refusal,
    Source,
)

MAPPING = {"userId": "customer", "event": {"constant": "Order Completed"},
           "properties": {"fields": {"total": "total"}}}


def orders(sync: SyncMode = SyncMode.CHANGED,
           mapping: dict[str, object] | None = None) -> CompiledImport:
    spec = mapping or MAPPING
    return CompiledImport("Orders", compile_mapping("track", spec),
                          MessageIds("f1", "Orders", "track"), sync,
                          version_hasher("track", spec))


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


def test_key_hashes_and_versions_are_those_stored_snapshots_hold() -> None:
    # the numbers snapshots of earlier versions hold: a different hash would make every
    # record of every diffed import new (or changed) once, and resent
    version = version_hasher("track", MAPPING)
    assert key_hash("order-7") == -1606328390169333007
    assert version({"id": 7, "customer": "c7", "total": "10.00"}) == -75706776163971


def test_the_version_reads_the_mapped_fields_only_and_depends_on_the_mapping() -> None:
    version = version_hasher("track", MAPPING)
    record = {"id": 1, "customer": "c1", "total": {"a": 1, "b": 2}, "note": "x"}
    reordered = {"note": "y", "total": {"b": 2, "a": 1}, "customer": "c1", "id": 2}
    assert version(record) == version(reordered)  # (id is the key, not a mapped field)
    assert version(record) != version({**record, "customer": "c2"})
    assert version(record) != version({k: v for k, v in record.items() if k != "total"})
    other = version_hasher("track", {**MAPPING, "event": {"constant": "Order Placed"}})
    assert other(record) != version(record)  # a changed mapping: every record changed
    assert key_hash(7) == key_hash("7") != key_hash("8")  # a key is compared as its text


def test_a_mapping_that_may_read_any_field_versions_the_whole_record() -> None:
    everything = version_hasher("identify", {"userId": "id",
                                             "traits": {"all_other_fields": True}})
    by_expression = version_hasher("identify", {"userId": "id",
                                                "traits": {"expression": "record"}})
    record = {"id": 1, "plan": "pro"}
    for version in (everything, by_expression):
        assert version(record) != version({**record, "seats": 3})


def test_a_field_path_worked_out_per_record_versions_the_whole_record() -> None:
    """``field(concat('p_', tier))`` reads a field its text does not name: a change there is
    a change (it was unchanged, and the new price was never sent)."""
    version = version_hasher("track", {"userId": "id", "event": {"constant": "Priced"},
                                       "properties": {"fields": {"price": {
                                           "expression": "field(concat('p_', tier))"}}}})
    record = {"id": 1, "tier": "gold", "p_gold": 100}
    assert version(record) != version({**record, "p_gold": 999})


def test_verdicts_and_what_each_mode_sends() -> None:
    differences = {0: None, 2: 4}  # record 0: key never sent; 2: another version sent
    assert verdict(differences, 0) is Verdict.NEW
    assert verdict(differences, 1) is Verdict.UNCHANGED
    assert verdict(differences, 2) is Verdict.CHANGED
    assert is_sent(SyncMode.CHANGED, Verdict.CHANGED)
    assert not is_sent(SyncMode.NEW, Verdict.CHANGED)
    assert is_sent(SyncMode.NEW, Verdict.NEW)
    assert not is_sent(SyncMode.CHANGED, Verdict.UNCHANGED)


def test_a_record_without_a_key_is_a_record_error_saying_what_to_do() -> None:
    refused = RecordStep([], "id").diff_call(orders(), 0, {"id": "", "customer": "c"})
    assert isinstance(refused, Refusal)
    assert refused.step is FailedStep.MAP and refused.field == "id"
    assert "key field 'id'" in refused.reason and "sync: all" in refused.reason
    nested = RecordStep([], "customer.id").diff_call(orders(), 0, {"customer": {"id": "c"}})
    assert isinstance(nested, Refusal)  # a dotted key field names a top-level field
    assert "'customer.id' is not followed as a path into 'customer'" in nested.reason


class ListExport:
    def __init__(self, items: list[SourceRecord]) -> None:
        self.items = items

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        yield from (r for r in self.items if r.position >= start_position)

    def read_share(self) -> float | None:
        return None


def snapshot_check(last_sent: dict[int, int]) -> SnapshotCheck:
    """A snapshot holding ``last_sent`` (key hash -> version), compared as the store does."""
    def compare(_snapshot: int, keys: Sequence[int], versions: Sequence[int]) -> Differences:
        return {index: last_sent.get(key) for index, (key, version)
                in enumerate(zip(keys, versions, strict=True)) if last_sent.get(key) != version}
    return SnapshotCheck(compare, {0: 42})


def produce(items: list[SourceRecord], imports: list[CompiledImport],
            check: SnapshotCheck | None = None, lane: Lane | None = None) -> list[Chunk]:
    chunks: list[Chunk] = []
    producer = Producer(Source(export=ListExport(items), imports=imports, key_field="id",
                               diff=check),
                        lambda chunk: chunks.append(chunk) if chunk else None, None,
                        threading.Event(), lane)
    producer.run()
    assert producer.error is None
    return chunks


def test_the_producer_notes_each_diffed_record_and_not_those_of_a_sync_all_import() -> None:
    items = [SourceRecord(i, f"line {i + 2}", {"id": i, "customer": f"c{i}", "total": "1"})
             for i in range(5)]
    everything = CompiledImport("All", compile_mapping("track", MAPPING),
                                MessageIds("f1", "All", "track"))
    chunks = produce(items, [everything, orders()])  # (no snapshot: a retry sends all)

    seen = [entry for chunk in chunks for entry in chunk.seen]
    assert [(index, position) for index, position, *_rest in seen] == [(1, p) for p in range(5)]
    assert {key for _i, _p, key, *_rest in seen} == {key_hash(i) for i in range(5)}
    sent = [item for chunk in chunks for index, batch in chunk.batches for item in batch]
    assert len(sent) == 10


def test_unchanged_records_are_counted_and_never_mapped_nor_sent() -> None:
    # a mapping that fails for every record: only the records that are sent are mapped
    failing = {"userId": "customer", "event": {"expression": "1 / zero"}}
    imp = orders(mapping=failing)
    assert imp.version is not None
    records = [{"id": i, "customer": f"c{i}", "zero": 0} for i in range(6)]
    last_sent = {key_hash(i): imp.version(records[i]) for i in range(4)}  # 0-3 unchanged
    last_sent[key_hash(3)] += 1  # ... but 3 changed since
    check = snapshot_check(last_sent)
    items = [SourceRecord(i, f"line {i + 2}", data) for i, data in enumerate(records)]

    chunks = produce(items, [imp], check)

    counts = {key: sum(chunk.tally.imports.get("Orders", {}).get(key, 0) for chunk in chunks)
              for key in ("unchanged", "changed", "new", "ignored", "failed")}
    assert counts == {"unchanged": 3, "changed": 1, "new": 2, "ignored": 3, "failed": 3}
    failed = sorted(row.position for chunk in chunks for row in chunk.errors)
    assert failed == [3, 4, 5]  # mapped (and refused) only because they were to be sent


def test_a_changed_records_message_id_names_the_version_it_replaces() -> None:
    imp = orders()
    assert imp.version is not None
    record = {"id": 1, "customer": "c1", "total": "5.00"}
    items = [SourceRecord(0, "line 2", record)]
    version = imp.version(record)

    def message_id(last_sent: dict[int, int]) -> str:
        chunks = produce(items, [imp], snapshot_check(last_sent))
        calls = [orjson.loads(item.body) for chunk in chunks for _i, batch in chunk.batches
                 for item in batch]
        assert len(calls) == 1
        return str(calls[0]["messageId"])

    new = message_id({})
    replacing_a, replacing_b = message_id({key_hash(1): 11}), message_id({key_hash(1): 12})
    assert new == imp.ids.by_version(1, version)  # a key never sent: the id it always had
    assert len({new, replacing_a, replacing_b}) == 3  # A -> B -> A: each send its own id
    assert message_id({key_hash(1): 11}) == replacing_a  # sent again (the snapshot did not
    # move: a failed call, a run after a failed run): the same id, Segment drops the repeat


def test_a_lanes_unchanged_records_are_counted_in_the_chunk_of_their_block() -> None:
    imp = orders()
    assert imp.version is not None
    records = [{"id": i, "customer": f"c{i}", "total": "1.00"} for i in range(12)]
    last_sent = {key_hash(i): imp.version(data) for i, data in enumerate(records)}
    items = [SourceRecord(i, f"line {i + 2}", data) for i, data in enumerate(records)]
    lane = Lane(index=0, count=1, block_records=5)  # blocks 0-4, 5-9, 10-11

    def blocks(check: SnapshotCheck) -> list[tuple[int, int, int, dict[str, int]]]:
        return [(chunk.seq, chunk.start, chunk.end, chunk.tally.imports.get("Orders", {}))
                for chunk in produce(items, [imp], check, lane)]

    unchanged = blocks(snapshot_check(last_sent))  # one group, every record unchanged
    assert [(seq, start, end) for seq, start, end, _counts in unchanged] == [
        (1, 0, 5), (2, 5, 10), (3, 10, 12)]
    assert [counts["unchanged"] for *_block, counts in unchanged] == [5, 5, 2]

    last_sent[key_hash(7)] += 1  # record 7 changed since: sent, its neighbours counted
    changed = blocks(snapshot_check(last_sent))
    assert [counts.get("unchanged", 0) for *_block, counts in changed] == [5, 4, 2]
    assert [counts.get("changed", 0) for *_block, counts in changed] == [0, 1, 0]

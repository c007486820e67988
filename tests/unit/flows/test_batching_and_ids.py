from __future__ import annotations

import orjson

from segbridge.apps.segment.limits import BATCH_CUT_BYTES, MAX_BATCH_BYTES, MAX_BATCH_CALLS
from segbridge.runs.batching import Batcher, Item, batch_body
from segbridge.runs.message_ids import MessageIds


def item(position: int, size: int) -> Item:
    body = orjson.dumps({"type": "track", "event": "x" * size, "userId": str(position)})
    return Item(position, f"line {position + 2}", body)


def fill(batcher: Batcher, items: list[Item]) -> list[list[Item]]:
    batches: list[list[Item]] = []
    for one in items:
        if not batcher.fits(one):
            batches.append(batcher.take())
        batcher.add(one)
    batches.append(batcher.take())
    return batches


def test_batches_are_cut_by_bytes_below_segments_limit() -> None:
    batches = fill(Batcher(), [item(i, 3000) for i in range(1000)])
    for batch in batches:
        body = batch_body(batch, "2026-11-28T00:00:00.000Z")
        assert len(body) <= BATCH_CUT_BYTES < MAX_BATCH_BYTES
        assert [c["userId"] for c in orjson.loads(body)["batch"]] == \
            [str(i.position) for i in batch]
    assert sum(len(b) for b in batches) == 1000
    assert len(batches) == 7  # ~3 KB calls: ~157 per 475,000 bytes


def test_batches_never_pass_2500_calls() -> None:
    batches = fill(Batcher(), [item(i, 1) for i in range(6000)])
    assert [len(b) for b in batches] == [MAX_BATCH_CALLS, MAX_BATCH_CALLS, 1000]


def test_the_body_carries_sent_at_and_valid_json() -> None:
    body = orjson.loads(batch_body([item(0, 5), item(1, 5)], "2026-11-28T10:00:00.000Z"))
    assert body["sentAt"] == "2026-11-28T10:00:00.000Z"
    assert len(body["batch"]) == 2


def test_message_ids_are_stable_per_flow_import_and_record() -> None:
    ids = MessageIds("flw_1", "Orders", "track")
    again = MessageIds("flw_1", "Orders", "track")
    record = {"order_id": 7, "total": 12.5}
    assert ids.by_key(7) == again.by_key(7) == again.by_key("7")
    assert ids.by_position(3, record) == again.by_position(3, dict(reversed(record.items())))
    assert len(ids.by_key(7)) <= 100 and ids.by_key(7).startswith("sb-")


def test_message_ids_differ_where_they_must() -> None:
    base = MessageIds("flw_1", "Orders", "track")
    record = {"a": 1}
    distinct = {
        base.by_key(1), base.by_key(2), base.by_position(1, record), base.by_position(2, record),
        base.by_position(1, {"a": 2}), MessageIds("flw_2", "Orders", "track").by_key(1),
        MessageIds("flw_1", "Other", "track").by_key(1),
        MessageIds("flw_1", "Orders", "identify").by_key(1),
        MessageIds("flw_1", "Orders", "track", salt="run_1").by_key(1),
    }
    assert len(distinct) == 9

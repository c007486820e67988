"""The pieces of lanes that need no process: how blocks are dealt, how a chunk's calls are
packed to cross a pipe, and that a packed batch makes the same request body."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import orjson
import pytest

from segbridge.apps.files.csv_export import CsvExport
from segbridge.apps.segment.sink import gzip_batch
from segbridge.runs.batching import Batcher, Item, PackedCalls, PackingBatcher
from segbridge.runs.counts import ErrorRow, Tally
from segbridge.runs.lanes import LanePolicy, chunk_frame, chunk_from_frame
from segbridge.runs.producer import Chunk, Lane


def items(count: int, start: int = 0) -> list[Item]:
    return [Item(i, f"line {i + 2}", orjson.dumps({"type": "track", "n": i, "pad": "x" * (i % 7)}))
            for i in range(start, start + count)]


@pytest.mark.parametrize("start", [0, 5, 1000])
def test_every_position_belongs_to_exactly_one_lane_block(start: int) -> None:
    lanes = [Lane(index, 3, 10, start) for index in range(3)]
    owner: dict[int, int] = {}
    for lane in lanes:
        position = start
        while position < start + 200:
            low, high = lane.around(position)
            assert low >= start and high - low == 10 and high > position
            for p in range(low, min(high, start + 200)):
                assert p not in owner, f"{p} in lanes {owner[p]} and {lane.index}"
                owner[p] = lane.index
            position = high
    assert sorted(owner) == list(range(start, start + 200))
    assert [owner[start + 10 * block] for block in range(6)] == [0, 1, 2, 0, 1, 2]


def test_a_position_between_blocks_gives_the_lanes_next_block() -> None:
    lane = Lane(index=1, count=2, block_records=10)
    assert lane.around(0) == (10, 20)
    assert lane.around(19) == (10, 20)
    assert lane.around(20) == (30, 40)  # 20-29 is lane 0's


def test_packed_calls_give_back_every_item_and_slices_share_the_bytes() -> None:
    calls = items(25)
    packed = PackedCalls.pack(calls)
    assert len(packed) == 25
    assert list(packed) == calls
    assert packed[-1] == calls[-1] and packed[3] == calls[3]
    assert packed.joined() == b",".join(item.body for item in calls)
    middle = packed[7:19]
    assert list(middle) == calls[7:19]
    assert middle.joined() == b",".join(item.body for item in calls[7:19])
    assert list(middle[:5]) == calls[7:12] and list(middle[5:]) == calls[12:19]
    assert len(packed[30:]) == 0 and packed[30:].joined() == b""
    with pytest.raises(IndexError):
        packed[25]


def test_a_lane_packs_each_call_as_it_comes_and_cuts_batches_as_one_producer_does() -> None:
    calls = items(700)
    plain, packing = Batcher(cut_bytes=6000), PackingBatcher(cut_bytes=6000)
    batches: list[tuple[list[Item], PackedCalls]] = []
    for item in calls:
        assert plain.fits(item) == packing.fits(item)
        if not plain.fits(item):
            batches.append((plain.take(), packing.take()))
        plain.add(item)
        packing.add(item)
        assert len(plain) == len(packing) and plain.size == packing.size
    batches.append((plain.take(), packing.take()))

    assert len(batches) >= 4 and len(packing) == 0
    for items_of, packed in batches:
        assert list(packed) == items_of
        assert packed.joined() == b",".join(item.body for item in items_of)


def test_a_packed_batch_makes_the_same_body_as_its_items() -> None:
    calls = items(300)
    sent_at = "2026-11-28T10:00:00.000Z"
    for part in (slice(None), slice(0, 150), slice(150, None)):
        plain = gzip.decompress(gzip_batch(calls[part], sent_at, 3))
        packed = gzip.decompress(gzip_batch(PackedCalls.pack(calls)[part], sent_at, 3))
        assert packed == plain
        assert len(orjson.loads(packed)["batch"]) == len(calls[part])


def test_a_chunk_crosses_the_pipe_whole() -> None:
    tally = Tally()
    tally.add("exported", 40)
    tally.add("failed", 1, "Orders")
    error = ErrorRow(7, "line 9", "map", "the field 'id' is missing", "Orders", field="userId",
                     data={"a": "1"})
    chunk = Chunk(seq=3, start=20, end=60, batches=[(0, items(30, 20)), (1, items(9, 50))],
                  tally=tally, errors=[error], share=0.25)

    back = chunk_from_frame(pickle.loads(pickle.dumps(chunk_frame(chunk))))  # noqa: S301

    assert (back.seq, back.start, back.end, back.share) == (3, 20, 60, 0.25)
    assert back.tally == tally and back.errors == [error]
    assert [(index, list(calls)) for index, calls in back.batches] == \
        [(index, list(calls)) for index, calls in chunk.batches]


def test_lanes_apply_to_large_files_on_machines_with_cores() -> None:
    assert LanePolicy.for_machine(count=1).count == 0
    policy = LanePolicy.for_machine(count=4, min_file_bytes=1000)
    assert policy.applies(1000) and not policy.applies(999)
    assert not LanePolicy(count=0, min_file_bytes=0).applies(10**9)


def test_a_csv_read_in_lanes_gives_each_record_once_as_one_pass_does(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes(b"id,name\n1,a\n2,b\n\n3,\"multi\nline\"\n4,too,many\n5,e\n6,\xff\n7,g\n"
                     b"8,h\n9,i\n10,j\n")
    export = CsvExport(path)
    whole = [(r.position, r.ref, r.data, r.error) for r in export.records(0)]

    seen = []
    for index in range(2):
        lane = Lane(index, 2, 3, start=1)
        for record in CsvExport(path).records_in(lane):
            low, _high = lane.around(record.position)
            if record.position >= low:  # (unreadable records may come from other blocks)
                seen.append((record.position, record.ref, record.data, record.error))

    assert sorted(seen) == [row for row in whole if row[0] >= 1]
    assert ("line 5", {"id": "3", "name": "multi\nline"}) in [(r[1], r[2]) for r in seen]

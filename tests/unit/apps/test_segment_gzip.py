"""The gzipped batch body: the same JSON whichever library compresses it, at the level asked."""

from __future__ import annotations

import gzip

import orjson
import pytest

from segbridge.apps.segment import sink
from segbridge.apps.segment.sink import gzip_batch, isal_level
from segbridge.sinks.calls import Item, PackedCalls

SENT_AT = "2026-11-30T05:00:00.000Z"


def calls(count: int) -> list[Item]:
    return [Item(i, f"line {i + 2}", orjson.dumps({
        "type": "track", "userId": f"user-{i % 500}", "event": "Order Completed",
        "properties": {"order_id": i, "total": f"{i % 997}.50", "sku": f"sku-{i % 31}"},
        "messageId": f"sb-3f9a2c71-{i:012d}"})) for i in range(count)]


def expected_body(items: list[Item]) -> bytes:
    return b'{"batch":[' + b",".join(item.body for item in items) + b'],"sentAt":"' \
        + SENT_AT.encode() + b'"}'


@pytest.mark.parametrize("isal", [True, False], ids=["isa-l", "zlib"])
@pytest.mark.parametrize("level", [0, 1, 3, 6, 9])
def test_the_body_inflates_to_the_batch_json(monkeypatch: pytest.MonkeyPatch, isal: bool,
                                             level: int) -> None:
    monkeypatch.setattr(sink, "ISAL", isal)
    items = calls(300)  # more than two compress groups

    for batch in (items, PackedCalls.pack(items)):
        body = gzip.decompress(gzip_batch(batch, SENT_AT, level))
        assert body == expected_body(items)
        assert len(orjson.loads(body)["batch"]) == 300


def test_isa_l_compresses_about_as_well_as_zlib(monkeypatch: pytest.MonkeyPatch) -> None:
    items = calls(2000)
    sizes = {}
    for isal in (True, False):
        monkeypatch.setattr(sink, "ISAL", isal)
        sizes[isal] = len(gzip_batch(items, SENT_AT, 3))

    assert sizes[True] != sizes[False]  # a different compressor ran
    assert sizes[True] < 1.1 * sizes[False]
    assert sizes[True] < len(expected_body(items)) / 5


def test_level_zero_stores_without_compressing() -> None:
    items = calls(50)

    assert len(gzip_batch(items, SENT_AT, 0)) > len(expected_body(items))


@pytest.mark.parametrize(("level", "isa_l"), [(1, 1), (3, 1), (4, 2), (6, 2), (7, 3), (9, 3)])
def test_zlib_levels_map_to_isa_l_levels(level: int, isa_l: int) -> None:
    assert isal_level(level) == isa_l

"""An import's call for deleted keys (``deleted``): off by default, only with a sync that
compares records by key, a track with its event or an identify with traits; every mistake
said at its field, in the words of what to write."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from segbridge.flows.definition import validate_definition
from segbridge.flows.document import parse_flow_document

DOC: dict[str, Any] = {
    "name": "Orders", "integration": "Shop",
    "export": {"type": "csv", "path": "/srv/orders.csv", "key_field": "order_id"},
    "imports": [{"name": "Orders", "connection": "Segment", "call": "track", "sync": "changed",
                 "mapping": {"userId": "customer_id", "event": {"constant": "Order Completed"}}}],
}


def with_deleted(deleted: object, sync: str = "changed") -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    doc["imports"][0].update(deleted=deleted, sync=sync)
    return doc


def problems(doc: object) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in validate_definition(doc)]


@pytest.mark.parametrize("deleted", [
    {"call": "track", "event": "Record Deleted"},
    {"call": "track", "event": "Record Deleted", "properties": {"reason": "gone"}},
    {"call": "identify", "traits": {"deleted": True}},
    {"call": "identify"},
])
def test_a_track_with_its_event_or_an_identify_is_kept_as_written(deleted: object) -> None:
    written = parse_flow_document(with_deleted(deleted)).as_written()
    assert written["imports"][0]["deleted"] == deleted  # type: ignore[index]


def test_off_by_default_and_not_written_back() -> None:
    flow = parse_flow_document(DOC)
    assert flow.imports[0].deleted is None
    assert "deleted" not in flow.as_written()["imports"][0]  # type: ignore[index]


def test_only_a_sync_of_changed_or_new_records_has_deleted_keys() -> None:
    assert problems(with_deleted({"call": "track", "event": "Gone"}, sync="all")) == [
        ("imports.0.deleted", "a call for deleted keys needs a sync that compares records by "
                              "key: set sync: changed (or new), or remove deleted")]
    assert problems(with_deleted({"call": "track", "event": "Gone"}, sync="new")) == []


@pytest.mark.parametrize(("deleted", "expected"), [
    ({"call": "track"}, [("imports.0.deleted.event", "a deleted key's track needs its event: "
                                                     "add event, e.g. event: Record Deleted")]),
    ({"call": "track", "event": " "}, [("imports.0.deleted.event",
                                        "name the event, e.g. Record Deleted")]),
    ({"call": "track", "event": "Gone", "traits": {}},
     [("imports.0.deleted.traits", "a track carries properties, not traits: write properties "
                                   "instead")]),
    ({"call": "identify", "event": "Gone"},
     [("imports.0.deleted.event", "an identify has no event: remove it (an identify carries "
                                  "traits)")]),
    ({"call": "page"}, [("imports.0.deleted.call", "use one of: track, identify")]),
    ("Record Deleted", [("imports.0.deleted", "use {call: track, event: Record Deleted} or "
                                              "{call: identify, traits: {deleted: true}}")]),
    ({"call": "track", "event": "Gone", "userId": "x"},
     [("imports.0.deleted.userId", "unknown key; use one of: call, event, properties, "
                                   "traits")]),
])
def test_each_mistake_is_said_at_its_field(deleted: object,
                                           expected: list[tuple[str, str]]) -> None:
    assert problems(with_deleted(deleted)) == expected

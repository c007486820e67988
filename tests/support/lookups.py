"""What the lookup flow tests share (Database and HTTP API lookups alike): the customers the
orders name (``orders()`` names c0..c96, c0..c89 are known, each with a plan), the flow whose
lookup step's answer is mapped to the events' plan and country, what the events then carry,
and workers that split a run into lanes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from segbridge.runs.lanes import LanePolicy
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import FAST, Receiver, open_errors

KNOWN = 90  # customers c0..c89 exist; the orders name c0..c96 (orders(): i % 97)


def plan_of(number: int) -> str:
    return ("free", "pro", "team")[number % 3]


def customer(number: int) -> dict[str, str]:
    """A known customer's row, or the API's answer about it."""
    return {"id": f"c{number}", "plan": plan_of(number), "country": "FR"}


def unknown_orders(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The orders of customers the lookup does not find."""
    return [row for row in rows if int(row["customer_id"][1:]) >= KNOWN]


def with_lookup(doc: dict[str, Any], lookup: Mapping[str, Any]) -> dict[str, Any]:
    """The flow with ``lookup`` as its only step, the answer's plan and country mapped."""
    doc["steps"] = [{"lookup": dict(lookup)}]
    properties = doc["imports"][0]["mapping"]["properties"]["fields"]
    properties["plan"] = "customer.plan"
    properties["country"] = "customer.country"
    return doc


def assert_enriched(events: Sequence[Mapping[str, Any]]) -> None:
    """Each event has its customer's plan and country; an unknown customer's none
    (``on_missing: leave_empty``)."""
    for one in events:
        number = int(one["userId"][1:])
        assert one["properties"].get("plan") == (plan_of(number) if number < KNOWN else None), one
        assert one["properties"].get("country") == ("FR" if number < KNOWN else None), one


def assert_plans(events: Sequence[Mapping[str, Any]]) -> None:
    """Each event has its customer's plan."""
    assert all(one["properties"]["plan"] == plan_of(int(one["userId"][1:])) for one in events)


def assert_unknown_handled(server: Server, receiver: Receiver, flow_id: str,
                           run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                           on_missing: str) -> dict[str, Any] | None:
    """The run sent the known customers' orders; the unknown ones' failed, each an open
    error (``fail_record``: the first one is returned), or were ignored (``ignore_record``)."""
    unknown = unknown_orders(rows)
    assert run["counts"]["sent"] == len(rows) - len(unknown) == len(receiver.archived())
    errors = open_errors(server, flow_id, run["id"])
    if on_missing != "fail_record":
        assert run["counts"]["ignored"] == len(unknown) and errors == []
        return None
    assert run["counts"]["failed"] == len(unknown)
    first: dict[str, Any] = min(errors, key=lambda error: error["position"])
    assert first["reason"] == (f"the lookup 'customer' found nothing for customer_id = "
                               f"'{unknown[0]['customer_id']}'")
    return first


@pytest.fixture
def lane_workers(server: Server) -> Iterator[Workers]:
    """Workers that produce a run in 3 lanes of 97-record blocks (any file size)."""
    started = Workers(server.runtime, policy=FAST,
                      lanes=LanePolicy(count=3, min_file_bytes=0, block_records=97))
    started.start()
    yield started
    started.stop()

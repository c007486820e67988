"""A flow document's lookup step: its shape checked with every problem at once, and the
database part of it (the query's parameters against ``params`` and ``key_column``)."""

from __future__ import annotations

import copy
from typing import Any

from segbridge.apps.database.lookup import lookup_problems, query_parameters
from segbridge.flows.definition import validate_definition
from segbridge.flows.document import parse_flow_document, stored_flow_document

FLOW: dict[str, Any] = {
    "name": "Orders", "integration": "Shop",
    "export": {"type": "csv", "path": "/srv/orders.csv"},
    "steps": [{"lookup": {"name": "customer", "connection": "Shop DB",
                          "query": "select id, plan from customers where id in :id",
                          "params": {"id": "customer_id"}, "key_column": "id",
                          "on_missing": "fail_record",
                          "cache": {"size": 500, "ttl_seconds": 60}}},
              {"filter": {"expression": "field('customer.plan') == 'pro'"}}],
    "imports": [{"name": "Orders", "connection": "Segment", "call": "track",
                 "mapping": {"userId": "customer_id", "event": {"constant": "Order"},
                             "properties": {"fields": {"plan": "customer.plan"}}}}],
}


def with_lookup(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(FLOW)
    doc["steps"][0]["lookup"].update(changes)
    return doc


def problems(doc: object) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in validate_definition(doc)]


def test_a_lookup_step_is_kept_as_written() -> None:
    doc = parse_flow_document(FLOW)
    assert doc.as_written()["steps"] == FLOW["steps"]
    lookup = doc.steps[0].lookup
    assert lookup is not None and lookup.cache.size == 500 and lookup.on_missing == "fail_record"


def test_defaults_leave_the_record_empty_and_cache_ten_thousand_keys() -> None:
    doc = copy.deepcopy(FLOW)
    del doc["steps"][0]["lookup"]["on_missing"], doc["steps"][0]["lookup"]["cache"]
    lookup = parse_flow_document(doc).steps[0].lookup
    assert lookup is not None
    assert (lookup.on_missing, lookup.cache.size, lookup.cache.ttl_seconds) == \
        ("leave_empty", 10_000, 600)
    assert "cache" not in parse_flow_document(doc).as_written()["steps"][0]["lookup"]


def test_every_problem_of_a_lookup_at_once() -> None:
    found = problems(with_lookup(name="a.b", connection=" ", params={"id": ""},
                                 on_missing="skip", cache={"size": 0, "ttl_seconds": "1"},
                                 colour="red"))
    assert found == [
        ("steps.0.lookup.colour", "unknown key; use one of: cache, connection, connection_id, "
                                  "key_column, name, on_missing, params, query, request, "
                                  "result"),
        ("steps.0.lookup.name", "enter the name of the record field the result goes under "
                                "(no dots), e.g. customer"),
        ("steps.0.lookup.connection", "name a connection that can answer lookups (e.g. a "
                                      "Database connection)"),
        ("steps.0.lookup.params.id", "name a record field (or a dotted path such as "
                                     "customer.id)"),
        ("steps.0.lookup.on_missing", "use one of: leave_empty, fail_record, ignore_record"),
        ("steps.0.lookup.cache.size", "use a whole number of keys from 1 to 1,000,000"),
        ("steps.0.lookup.cache.ttl_seconds", "use a whole number of seconds, 0 (no caching) "
                                             "or more"),
    ]


def test_a_step_is_a_filter_or_a_lookup() -> None:
    doc = copy.deepcopy(FLOW)
    doc["steps"] = [{"enrich": {}}, {"filter": {"expression": "a"}, "lookup": {}}, "x"]
    shape = ("use {filter: {expression: \"status != 'x'\"}} or {lookup: {name, connection, "
             "query (or request), params}}")
    assert problems(doc) == [("steps.0", shape), ("steps.1", shape), ("steps.2", shape)]


def test_a_stored_lookup_keeps_its_connection_id_out_of_the_flow_as_code() -> None:
    doc = with_lookup(connection_id="con_123")
    stored = stored_flow_document(doc)
    assert "connection_id" not in stored.as_written()["steps"][0]["lookup"]


def test_query_parameters_are_read_as_sqlalchemy_reads_them() -> None:
    query = "select x::text from t where a = :a and b in :b and c = ':c' and d = :a"
    assert query_parameters(query) == ["a", "b", "c"]  # ':c' in quotes counts too: as text()


def test_the_query_and_params_must_name_the_same_parameters() -> None:
    lookup = {"query": "select plan from customers where id = :id and region = :region",
              "params": {"id": "customer_id", "shop": "shop_id"}}
    assert [(p.field, p.message) for p in lookup_problems(lookup, "steps.0.lookup")] == [
        ("steps.0.lookup.params", "the query has no :shop; use it in the query or remove it"),
        ("steps.0.lookup.query", ":region has no value; add region: <a record field> to "
                                 "params"),
    ]


def test_a_batched_lookup_takes_one_parameter_used_with_in() -> None:
    field = "steps.0.lookup"
    two = {"query": "select * from c where id in :id and r = :r",
           "params": {"id": "a", "r": "b"}, "key_column": "id"}
    equals = {"query": "select * from c where id = :id", "params": {"id": "a"},
              "key_column": "id"}
    fine = {"query": "select * from c where id IN (:id)", "params": {"id": "a"},
            "key_column": "id"}
    assert [p.field for p in lookup_problems(two, field)] == [f"{field}.key_column"]
    assert [(p.field, p.message) for p in lookup_problems(equals, field)] == [
        (f"{field}.query", "a batched lookup (key_column) reads many keys at once: write "
                           "'where <column> in :id'")]
    assert lookup_problems(fine, field) == []

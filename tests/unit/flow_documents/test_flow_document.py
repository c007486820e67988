"""The flow document as a typed model: every problem at once, at the field paths and in the
words the definition checks always used; documents written before it still import."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from segbridge.apps.database.document import DatabaseExport
from segbridge.apps.files.document import CsvExport, NdjsonExport
from segbridge.core.errors import ValidationFailed
from segbridge.flows.definition import validate_definition
from segbridge.flows.document import (
    FlowDocument,
    parse_flow_document,
    stored_flow_document,
)

CSV: dict[str, Any] = {
    "name": "Orders", "integration": "Shop", "enabled": True,
    "schedule": {"cron": "0 * * * *", "timezone": "Europe/Paris"},
    "export": {"type": "csv", "path": "/srv/orders.csv", "key_field": "order_id",
               "options": {"delimiter": ";", "header": ["a", "b"]}},
    "steps": [{"filter": {"expression": "status != 'test'"}}],
    "imports": [{"name": "Orders", "connection": "Segment", "call": "track",
                 "mapping": {"userId": "customer_id", "event": {"constant": "Order Completed"}}}],
}
DATABASE: dict[str, Any] = {
    "name": "Users", "integration": "Shop",
    "export": {"type": "database", "connection": "Shop DB", "query": "SELECT * FROM users",
               "cursor": {"column": "updated_at", "lag_seconds": 60}},
    "imports": [{"name": "Users", "connection": "Segment", "call": "identify",
                 "mapping": {"userId": "id"}}],
}


def problems(doc: object) -> list[tuple[str, str]]:
    return [(p.field, p.message) for p in validate_definition(doc)]


def changed(doc: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    copied = copy.deepcopy(doc)
    *parents, last = path.split(".")
    part: Any = copied
    for key in parents:
        part = part[int(key)] if isinstance(part, list) else part[key]
    part[int(last) if isinstance(part, list) else last] = value
    return copied


def test_each_export_kind_is_its_own_model() -> None:
    assert isinstance(parse_flow_document(CSV).export, CsvExport)
    database = parse_flow_document(DATABASE).export
    assert isinstance(database, DatabaseExport)
    assert database.cursor is not None and database.cursor.lag_seconds == 60
    ndjson = changed(CSV, "export", {"type": "ndjson", "upload": "upl_1"})
    assert isinstance(parse_flow_document(ndjson).export, NdjsonExport)


def test_a_document_reads_back_as_it_was_written() -> None:
    for doc in (CSV, DATABASE):
        assert parse_flow_document(doc).as_written() == doc
        assert stored_flow_document(doc).as_written() == doc


def test_keys_of_another_export_kind_are_kept_as_before() -> None:
    """Documents written before the kinds were told apart still import."""
    doc = changed(CSV, "export.query", "SELECT 1")
    assert problems(doc) == []
    assert parse_flow_document(doc).as_written()["export"] == doc["export"]


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("name", " ", [("name", "enter a name")]),
    ("name", "x" * 101, [("name", "use at most 100 characters")]),
    ("integration", 5, [("integration", "name the integration the flow belongs to")]),
    ("enabled", "yes", [("enabled", "use true or false")]),
    ("schedule", {"timezone": "UTC"},
     [("schedule", "use {cron: '0 * * * *', timezone: 'Europe/Paris'}")]),
    ("schedule.timezone", "Mars/Olympus",
     [("schedule.timezone", "'Mars/Olympus' is not an IANA time zone; e.g. 'Europe/Paris'")]),
    ("export.type", "xml", [("export.type", "use one of: csv, ndjson, json, parquet, database, "
                                            "http, webhook")]),
    ("export.upload", "upl_1",
     [("export.path", "give either a path on the server or an upload id")]),
    ("export.options.delimiter", ";;", [("export.options.delimiter", "use a single character")]),
    ("export.options.header", [1],
     [("export.options.header", "use true (first line), or a list of column names")]),
    ("export.options.encoding", "nope", [("export.options.encoding", "unknown encoding 'nope'")]),
    ("export.options.colour", "red", [("export.options.colour", "unknown key; use one of: "
                                       "delimiter, encoding, header, quote, skip_blank_lines")]),
    ("export.key_field", "", [("export.key_field", "name a field, e.g. order_id")]),
    ("steps", {}, [("steps", "use a list of steps, e.g. [{filter: {expression: ...}}]")]),
    ("steps.0", {"filter": {"expression": 1}},
     [("steps.0", "use {filter: {expression: \"status != 'x'\"}}")]),
    ("imports", [], [("imports", "add at least one import: {name, connection, call, "
                                 "mapping}")]),
    ("imports.0.call", "send", [("imports.0.call", "use one of: identify, track, page, "
                                                   "screen, group, alias")]),
    ("imports.0.mapping", {"event": {"constant": "x"}},
     [("imports.0.mapping.userId", "track calls need userId or anonymousId: map at least one")]),
])
def test_a_problem_names_its_field_and_the_fix(path: str, value: object,
                                               expected: list[tuple[str, str]]) -> None:
    assert problems(changed(CSV, path, value)) == expected


def test_every_problem_is_listed_at_once_unknown_keys_first() -> None:
    doc = changed(CSV, "colour", "red")
    doc["export"] = {"type": "xml", "sheet": 1}
    doc["imports"][0]["connection"] = None
    doc["imports"].append(copy.deepcopy(doc["imports"][0]))
    doc["schedule"]["cron"] = "every hour"
    assert problems(doc) == [
        ("colour", "unknown key; use one of: description, enabled, export, imports, "
                   "integration, name, schedule, steps"),
        ("schedule.cron", "'every hour' is not a cron expression; e.g. '0 * * * *' (hourly)"),
        ("export.sheet", "unknown key; use one of: batch, body, columns, connection, cursor, "
                         "format, key_field, max_attempts, max_body_bytes, method, options, "
                         "pagination, path, query, records, requests_per_second, "
                         "sensitive_fields, since, timeout_seconds, type, upload, verification"),
        ("export.type", "use one of: csv, ndjson, json, parquet, database, http, webhook"),
        ("imports.0.connection", "name a Segment connection"),
        ("imports.1.connection", "name a Segment connection"),
        ("imports.1.name", "import names must differ"),  # after the imports' own problems
    ]


def test_a_database_export_and_its_cursor() -> None:
    assert problems(changed(DATABASE, "export.query", " ")) == [
        ("export.query", "write the SELECT query to export")]
    assert problems(changed(DATABASE, "export.cursor.lag_seconds", -1)) == [
        ("export.cursor.lag_seconds", "use a whole number of seconds, 0 or more")]
    assert problems(changed(DATABASE, "export.cursor", {"lag_seconds": 1})) == [
        ("export.cursor", "use {column: updated_at, lag_seconds: 60}")]


def test_what_is_not_a_flow_is_one_problem() -> None:
    assert problems(["a list"]) == [
        ("flow", "a flow is a mapping with name, export and imports")]
    with pytest.raises(ValidationFailed):
        parse_flow_document(None)


def test_the_schema_describes_the_kinds_by_their_type() -> None:
    schema = FlowDocument.model_json_schema()
    kinds, null = schema["properties"]["export"]["anyOf"]  # null: an unfinished flow
    assert set(kinds["discriminator"]["mapping"]) == {"csv", "ndjson", "json", "parquet",
                                                      "database", "http", "webhook"}
    assert null == {"type": "null"}


def test_a_flow_as_code_needs_its_export_and_an_import_but_the_builder_may_wait() -> None:
    unfinished = {"name": "Orders", "integration": "Shop"}
    assert problems(unfinished) == [("export", "describe the source: {type: csv, path: ...}"),
                                    ("imports", "add at least one import: "
                                                "{name, connection, call, mapping}")]
    assert problems({**unfinished, "imports": []})[1][0] == "imports"
    draft = parse_flow_document(unfinished, unfinished=True)
    assert draft.missing_parts() == ["a source (export)", "a destination (import)"]
    assert parse_flow_document(CSV).missing_parts() == []
    with pytest.raises(ValidationFailed) as caught:  # other problems are still problems
        parse_flow_document({**unfinished, "schedule": {"cron": "nope"}}, unfinished=True)
    assert [p.field for p in caught.value.problems] == ["schedule.cron"]

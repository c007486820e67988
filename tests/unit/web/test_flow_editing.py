"""The flow builder's edits: one part of a flow document changed, the rest as it was."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from segbridge.flows.document import parse_flow_document
from segbridge.web import flow_editing as edit

BASE: dict[str, object] = {
    "name": "Orders", "integration": "Shop", "enabled": False,
    "steps": [{"filter": {"expression": "status != 'test'"}}],
    "imports": [{"name": "Orders", "connection": "Segment", "call": "track",
                 "mapping": {"userId": "customer_id", "event": {"constant": "Order"}}},
                {"name": "People", "connection": "Segment", "call": "identify",
                 "mapping": {"userId": "customer_id"}}],
}


def test_a_csv_upload_source_is_set_without_touching_the_rest() -> None:
    export = edit.file_export("csv", upload=" upl_1 ", path="/ignored",
                              options=edit.csv_options(delimiter=";", header=True,
                                                       encoding=""),
                              key_field="order_id")
    changed = edit.with_export(BASE, export)
    assert changed["export"] == {"type": "csv", "upload": "upl_1", "key_field": "order_id",
                                 "options": {"delimiter": ";", "header": True,
                                             "encoding": "utf-8"}}
    assert {k: v for k, v in changed.items() if k != "export"} == BASE
    assert "export" not in BASE
    parse_flow_document(changed, unfinished=True)


def test_a_path_source_and_a_tab_delimiter() -> None:
    export = edit.file_export("ndjson", path=" /srv/data/a.ndjson ")
    assert export == {"type": "ndjson", "path": "/srv/data/a.ndjson"}
    assert edit.csv_options(delimiter="\\t", header=False, encoding="latin-1") == {
        "delimiter": "\t", "header": False, "encoding": "latin-1"}


def test_a_database_source_with_a_cursor_and_without() -> None:
    incremental = edit.database_export(connection="Shop DB", query=" SELECT 1 ",
                                       cursor_column="updated_at",
                                       lag_seconds=edit.whole_number("60"))
    assert incremental == {"type": "database", "connection": "Shop DB", "query": "SELECT 1",
                           "cursor": {"column": "updated_at", "lag_seconds": 60}}
    full = edit.database_export(connection="Shop DB", query="SELECT 1", key_field="id")
    assert full == {"type": "database", "connection": "Shop DB", "query": "SELECT 1",
                    "key_field": "id"}
    assert edit.whole_number("") == 0
    assert edit.whole_number("soon") == "soon"  # the document's check refuses it at its field


def test_removing_the_source() -> None:
    with_source = edit.with_export(BASE, {"type": "csv", "upload": "upl_1"})
    assert "export" not in edit.with_export(with_source, None)


def test_filters_replace_the_steps_in_order_and_blank_ones_go() -> None:
    changed = edit.with_filters(BASE, ["a > 1", "  ", " b == 'x' "])
    assert changed["steps"] == [{"filter": {"expression": "a > 1"}},
                                {"filter": {"expression": "b == 'x'"}}]
    assert edit.filters_of(changed) == ["a > 1", "b == 'x'"]
    assert edit.filters_of(BASE) == ["status != 'test'"]
    assert edit.filters_of({"steps": "nonsense"}) == []
    assert edit.with_filters(BASE, [])["steps"] == []


def test_editing_the_filters_keeps_the_lookups() -> None:
    lookup = {"lookup": {"name": "customer", "connection": "CRM", "query": "select 1"}}
    with_lookup = {**BASE, "steps": [lookup, {"filter": {"expression": "a > 1"}}]}
    changed = edit.with_filters(with_lookup, ["b > 2"])
    assert changed["steps"] == [lookup, {"filter": {"expression": "b > 2"}}]
    assert edit.with_filters(with_lookup, [])["steps"] == [lookup]


def test_schedule_set_and_removed() -> None:
    scheduled = edit.with_schedule(BASE, " 0 2 * * * ", "Europe/Paris")
    assert scheduled["schedule"] == {"cron": "0 2 * * *", "timezone": "Europe/Paris"}
    assert edit.with_schedule(scheduled, "0 * * * *", "")["schedule"] == {
        "cron": "0 * * * *", "timezone": "UTC"}
    assert "schedule" not in edit.with_schedule(scheduled, "", "Europe/Paris")


def test_one_destination_renamed_or_removed() -> None:
    renamed = edit.with_import_changed(BASE, 1, name=" Users ", connection="Segment 2")
    assert edit.imports_of(renamed)[1] == {"name": "Users", "connection": "Segment 2",
                                           "call": "identify",
                                           "mapping": {"userId": "customer_id"}}
    assert edit.imports_of(renamed)[0] == edit.imports_of(BASE)[0]
    removed = edit.without_import(BASE, 0)
    assert [step["name"] for step in edit.imports_of(removed)] == ["People"]
    assert len(edit.imports_of(BASE)) == 2
    with pytest.raises(IndexError, match="no destination 3"):
        edit.without_import(BASE, 2)
    with pytest.raises(IndexError):
        edit.with_import_changed(BASE, -1, name="x", connection="y")


def test_renamed() -> None:
    assert edit.renamed(BASE, "  New name ")["name"] == "New name"
    assert BASE["name"] == "Orders"


def test_next_runs_in_the_chosen_zone() -> None:
    after = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # Paris moves to summer time next night
    runs = edit.next_runs("0 2 * * *", "Europe/Paris", after, 3)
    # 02:00 does not exist on the night the clocks go forward: croniter fires at 03:00
    assert [run.isoformat() for run in runs] == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", "2026-03-31T02:00:00+02:00"]
    quarter = edit.next_runs("*/15 * * * *", "UTC", after)
    assert [run.strftime("%H:%M") for run in quarter] == [
        "23:45", "00:00", "00:15", "00:30", "00:45"]


@pytest.mark.parametrize(("cron", "zone", "says"), [
    ("every day", "UTC", "not a cron expression"),
    ("0 * * * *", "Mars/Olympus", "not an IANA time zone"),
])
def test_next_runs_refuses_a_bad_cron_or_zone(cron: str, zone: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        edit.next_runs(cron, zone, datetime(2026, 1, 1, tzinfo=UTC))


def test_presets_are_valid_crons_and_zones_are_sorted() -> None:
    from croniter import croniter

    assert all(croniter.is_valid(p.cron) for p in edit.CRON_PRESETS if p.cron)
    assert [p.cron for p in edit.CRON_PRESETS].count("") == 1
    zones = edit.time_zones()
    assert zones == sorted(zones) and "Europe/Paris" in zones and "UTC" in zones


# ---- lookups --------------------------------------------------------------------------------

CUSTOMER = edit.lookup_settings(name=" customer ", connection=" CRM ",
                                query=" select id, plan from customers where id in :c ",
                                params={"c": "customer_id"}, key_column=" id ")
COUNTRY = edit.lookup_settings(name="country", connection="Geo",
                               query="select name from countries where code = :code",
                               params={"code": "address.country"}, on_missing="fail_record",
                               cache_size="500", cache_ttl="0")


def test_a_lookup_from_the_form_leaves_blank_parts_to_their_defaults() -> None:
    assert CUSTOMER == {"name": "customer", "connection": "CRM",
                        "query": "select id, plan from customers where id in :c",
                        "params": {"c": "customer_id"}, "key_column": "id",
                        "on_missing": "leave_empty"}
    assert COUNTRY["cache"] == {"size": 500, "ttl_seconds": 0}
    assert "key_column" not in COUNTRY
    typed = edit.lookup_settings(name="x", connection="CRM", query="q", params={},
                                 cache_size="lots")
    assert typed["cache"] == {"size": "lots"}  # the document's check names it at its field


def test_lookups_are_added_in_order_before_the_filters_and_the_rest_is_kept() -> None:
    one = edit.with_lookup(BASE, CUSTOMER)
    two = edit.with_lookup(one, COUNTRY)
    assert two["steps"] == [{"lookup": CUSTOMER}, {"lookup": COUNTRY},
                            {"filter": {"expression": "status != 'test'"}}]
    assert edit.lookups_of(two) == [CUSTOMER, COUNTRY]
    assert {k: v for k, v in two.items() if k != "steps"} == \
        {k: v for k, v in BASE.items() if k != "steps"}
    assert edit.lookups_of(BASE) == [] and BASE["steps"] == [
        {"filter": {"expression": "status != 'test'"}}]  # the input is not changed
    parse_flow_document(two, unfinished=True)


def test_a_lookup_written_after_a_filter_comes_first_once_edited() -> None:
    written = {**BASE, "steps": [{"filter": {"expression": "a > 1"}}, {"lookup": CUSTOMER}]}
    changed = edit.with_lookup(written, {**CUSTOMER, "on_missing": "ignore_record"}, 0)
    assert changed["steps"] == [{"lookup": {**CUSTOMER, "on_missing": "ignore_record"}},
                                {"filter": {"expression": "a > 1"}}]


def test_a_lookup_is_replaced_or_removed_by_its_number() -> None:
    two = edit.with_lookup(edit.with_lookup(BASE, CUSTOMER), COUNTRY)
    replaced = edit.with_lookup(two, {**COUNTRY, "name": "geo"}, 1)
    assert [lookup["name"] for lookup in edit.lookups_of(replaced)] == ["customer", "geo"]
    removed = edit.without_lookup(two, 0)
    assert edit.lookups_of(removed) == [COUNTRY]
    assert edit.filters_of(removed) == ["status != 'test'"]
    with pytest.raises(IndexError, match="no lookup 3"):
        edit.with_lookup(two, CUSTOMER, 2)
    with pytest.raises(IndexError, match="no lookup 1"):
        edit.without_lookup(BASE, 0)


def test_parameters_from_the_forms_rows() -> None:
    names, fields = ["c", " ", "", "code "], ["customer_id", "", "email", " address.zip"]
    assert edit.params_of(names, fields) == {"c": "customer_id", "code": "address.zip"}
    assert edit.unnamed_fields(names, fields) == ["email"]
    assert edit.params_of(["c"], [""]) == {"c": ""}  # the document asks for its field


@pytest.mark.parametrize(("query", "names"), [
    ("select * from c where id in :customer", ["customer"]),
    ("select * from c where a = :a and b = :b and c = :a", ["a", "b"]),
    ("select x::text from c where id = :id", ["id"]),  # a PostgreSQL cast is no parameter
    ("select '12:30' as t from c where id = :id", ["id"]),
    ("select 1", []),
])
def test_the_parameters_a_query_names(query: str, names: list[str]) -> None:
    assert edit.query_parameters(query) == names

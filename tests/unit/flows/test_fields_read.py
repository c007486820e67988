"""Which record fields a run reads (an export may leave the others out: Parquet's columns)."""

from __future__ import annotations

from typing import Any

from segbridge.runs.export_factory import fields_read


def flow(mapping: dict[str, Any], *, key_field: str | None = "order_id",
         steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    export: dict[str, Any] = {"type": "parquet", "path": "/data/orders.parquet"}
    if key_field:
        export["key_field"] = key_field
    return {"export": export, "steps": steps or [],
            "imports": [{"name": "Orders", "call": "track", "mapping": mapping}]}


MAPPING = {"userId": "customer.id", "event": {"constant": "Order Completed"},
           "properties": {"fields": {"total": "total", "tax": {"expression": "total * rate"}}}}


def test_the_mapping_filters_lookups_and_key_field_name_what_is_read() -> None:
    steps = [{"filter": {"expression": "status != 'void'"}},
             {"lookup": {"connection": "CRM", "query": "SELECT plan FROM c WHERE id = :id",
                         "params": {"id": "crm.id"}, "as": "plan"}}]
    reads = fields_read(flow(MAPPING, steps=steps))
    assert reads is not None
    assert {"order_id", "customer", "total", "rate", "status", "crm"} <= reads
    assert "note" not in reads


def test_any_field_may_be_read_when_a_mapping_or_filter_reads_the_whole_record() -> None:
    everything = {**MAPPING, "properties": {"all_other_fields": True}}
    assert fields_read(flow(everything)) is None
    by_expression = {**MAPPING, "properties": {"expression": "record"}}
    assert fields_read(flow(by_expression)) is None
    whole_filter = [{"filter": {"expression": "len(record) > 2"}}]
    assert fields_read(flow(MAPPING, steps=whole_filter)) is None
    by_path = {**MAPPING, "properties": {"expression": "field(concat('p_', tier))"}}
    assert fields_read(flow(by_path)) is None


def test_without_a_key_field_every_field_is_read() -> None:
    # a record without a key is identified by its whole content: never by a chosen part
    assert fields_read(flow(MAPPING, key_field=None)) is None

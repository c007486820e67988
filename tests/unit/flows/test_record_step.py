"""The producer's record step is the one path of a record: a run's producer and a preview call
it, so they make the same calls and the same record errors. Record-level errors sit in the one
exception tree and their steps are an enum stored as the strings it always stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from segbridge.apps.database.url import DatabaseUrlError, parse_database_url
from segbridge.apps.segment.limits import MAX_CALL_BYTES
from segbridge.core.errors import FailedStep, RecordError, SegbridgeError, UserInputError
from segbridge.exports.contracts import MappingError, SourceRecord
from segbridge.flows.preview import _entry
from segbridge.mapping import compile_expression, compile_mapping
from segbridge.mapping.expressions import ExpressionError, ExpressionSyntaxError
from segbridge.mapping.timestamps import TimestampError, to_datetime
from segbridge.runs.counts import ErrorRow
from segbridge.runs.message_ids import MessageIds
from segbridge.runs.producer import Chunk, CompiledImport, Producer, RecordStep, Refusal, Source

MAPPING = {"userId": "user_id", "event": {"constant": "Order Completed"},
           "properties": {"fields": {"blob": "blob"}}}


def track(name: str = "Track") -> CompiledImport:
    return CompiledImport(name, compile_mapping("track", MAPPING), MessageIds("f1", name, "track"))


def records() -> list[SourceRecord]:
    return [
        SourceRecord(0, "line 2", {"user_id": "u0", "status": "paid", "blob": "x"}),
        SourceRecord(1, "line 3", {"user_id": "", "status": "paid", "blob": "x"}),
        SourceRecord(2, "line 4", None, error="the line has 3 fields, not 2", field="blob"),
        SourceRecord(3, "line 5", {"user_id": "u3", "status": "test", "blob": "x"}),
        SourceRecord(4, "line 6", {"user_id": "u4", "status": 7, "blob": "x"}),
        SourceRecord(5, "line 7", {"user_id": "u5", "status": "paid",
                                   "blob": "y" * (MAX_CALL_BYTES + 10)}),
        SourceRecord(6, "line 8", {"user_id": "u6", "status": "paid", "blob": "x"}),
    ]


FILTER = "status + '' != 'test'"  # 7 + '' fails: a filter error for that record


class ListExport:
    def __init__(self, items: list[SourceRecord]) -> None:
        self.items = items

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        yield from (r for r in self.items if r.position >= start_position)

    def read_share(self) -> float | None:
        return None


def produced(imports: list[CompiledImport]) -> list[Chunk]:
    chunks: list[Chunk] = []
    source = Source(export=ListExport(records()), imports=imports,
                    filters=[compile_expression(FILTER)])
    producer = Producer(source, lambda chunk: chunks.append(chunk) if chunk else None, None,
                        threading.Event())
    producer.run()
    assert producer.error is None
    return chunks


def previewed(imports: list[CompiledImport]) -> list[dict[str, Any]]:
    step = RecordStep([compile_expression(FILTER)], None)
    return [_entry(step, imports, record) for record in records()]


def test_a_run_and_a_preview_make_the_same_calls_and_the_same_errors() -> None:
    imports = [track("Track"), track("Again")]
    chunks = produced(imports)
    entries = previewed(imports)

    run_bodies = [item.body for chunk in chunks for _index, batch in chunk.batches
                  for item in batch]
    preview_bodies = [orjson.dumps(call["call"], default=str)
                      for entry in entries for call in entry["calls"]]
    assert sorted(run_bodies) == sorted(preview_bodies)
    assert len(run_bodies) == 4  # records 0 and 6, for both imports

    run_errors = sorted((e.position, e.step, e.import_name, e.field, e.reason)
                        for chunk in chunks for e in chunk.errors)
    preview_errors = sorted((entry["position"], error["step"], error.get("import"),
                             error["field"], error["reason"])
                            for entry in entries for error in entry["errors"])
    assert run_errors == preview_errors
    assert [e[1] for e in run_errors] == ["map", "map", "export", "filter", "import", "import"]
    assert [entry["ignored"] for entry in entries] == [False, False, False, True, False, False,
                                                       False]


def test_the_preview_shows_an_error_for_one_import_with_its_name_and_a_record_error_without(
) -> None:
    entries = previewed([track()])
    assert list(entries[1]["errors"][0]) == ["step", "import", "field", "reason"]
    assert entries[1]["errors"][0]["field"] == "userId"
    assert entries[2]["errors"] == [{"step": "export", "field": "blob",
                                     "reason": "the line has 3 fields, not 2"}]
    assert list(entries[4]["errors"][0]) == ["step", "field", "reason"]
    too_large = entries[5]["errors"][0]
    assert too_large["step"] == "import"
    assert too_large["reason"].endswith(f"Segment accepts at most {MAX_CALL_BYTES:,} bytes per "
                                        "call: map fewer or smaller fields")


def test_the_step_of_one_record() -> None:
    step = RecordStep([compile_expression("amount > 1")], "id")
    imp = track()
    assert step.passes({"amount": 2}) is True
    assert step.passes({"amount": 1}) is False
    failed = step.passes({"amount": "x"})
    assert isinstance(failed, Refusal) and failed.step == FailedStep.FILTER
    written = step.call(imp, 3, {"id": 42, "user_id": "u", "blob": 1})
    assert not isinstance(written, Refusal)
    call, body = written
    assert call["messageId"] == MessageIds("f1", "Track", "track").by_key(42)
    assert orjson.loads(body) == call
    refused = step.call(imp, 3, {"id": 42, "user_id": None})
    assert isinstance(refused, Refusal)
    assert (refused.step, refused.import_name, refused.field) == (FailedStep.MAP, "Track",
                                                                  "userId")
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(300):
        node["blob"] = {}
        node = node["blob"]
    unwritable = step.call(imp, 4, {"user_id": "u", "blob": deep})
    assert isinstance(unwritable, Refusal)
    assert unwritable.reason == "the record cannot be mapped to a call: it is nested too deep"


def test_record_errors_are_one_branch_of_the_exception_tree_and_still_value_errors() -> None:
    mapping = MappingError("userId", "the field 'user_id' is missing")
    assert isinstance(mapping, RecordError) and mapping.message == str(mapping)
    assert (mapping.field, mapping.reason) == ("userId", "the field 'user_id' is missing")
    with pytest.raises(ExpressionError) as expression:
        compile_expression("1 / x")({"x": 0})
    assert isinstance(expression.value, RecordError)
    assert isinstance(expression.value, ValueError)
    with pytest.raises(TimestampError) as timestamp:
        to_datetime("yesterday", "iso", None)
    assert isinstance(timestamp.value, RecordError) and isinstance(timestamp.value, ValueError)
    assert RecordError("x").http_status == 422


def test_what_a_user_wrote_wrong_is_user_input_and_still_a_value_error() -> None:
    with pytest.raises(ExpressionSyntaxError) as syntax:
        compile_expression("1 +")
    assert isinstance(syntax.value, UserInputError) and isinstance(syntax.value, ValueError)
    assert syntax.value.position >= 1 and "(at position" in str(syntax.value)
    with pytest.raises(DatabaseUrlError) as url:
        parse_database_url("ftp://nowhere")
    assert isinstance(url.value, UserInputError) and isinstance(url.value, ValueError)
    assert isinstance(url.value, SegbridgeError) and url.value.message == str(url.value)


def test_failed_steps_are_the_strings_stored_in_record_errors() -> None:
    assert [step.value for step in FailedStep] == ["export", "lookup", "filter", "map", "import"]
    row = ErrorRow(0, "line 1", FailedStep.MAP, "why")
    assert row.step == "map" and orjson.dumps({"step": row.step}) == b'{"step":"map"}'

"""The caps on every record (depth, size, fields) in every export: a record past one is a
record error whose reason names the setting, the records around it are read as always, and
what an error keeps of the record is a bounded excerpt."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from segbridge.apps.database.export import DatabaseExport
from segbridge.apps.files.csv_export import CsvExport
from segbridge.apps.files.json_array import JsonArrayExport
from segbridge.apps.files.ndjson import NdjsonExport
from segbridge.exports.contracts import SourceRecord
from segbridge.exports.errors import ExportError
from segbridge.exports.limits import RecordLimits
from segbridge.mapping import compile_mapping
from segbridge.runs.counts import KEPT_DATA_BYTES, ErrorRow
from segbridge.runs.message_ids import MessageIds
from segbridge.runs.producer import Chunk, Producer, Source

SMALL = RecordLimits(max_depth=64, max_bytes=1024, max_fields=10)
DEPTH = "at most 64 are allowed (SEGBRIDGE_RECORD_MAX_DEPTH)"
FIELDS = "at most 10 are allowed (SEGBRIDGE_RECORD_MAX_FIELDS)"
BYTES = "at most 1,024 bytes are allowed (SEGBRIDGE_RECORD_MAX_BYTES)"


def nested_text(levels: int, inner: str = '"bottom"') -> str:
    """A JSON value ``levels`` objects deep (written by hand: orjson stops at 255)."""
    return '{"inner": ' * levels + inner + "}" * levels


def summary(records: list[SourceRecord]) -> list[tuple[int, str, Any]]:
    return [(r.position, r.ref, r.data if r.error is None else r.error) for r in records]


# -- NDJSON ---------------------------------------------------------------------------------


def test_ndjson_a_record_nested_300_deep_is_an_error_and_the_next_lines_are_read(
        tmp_path: Path) -> None:
    path = tmp_path / "o.ndjson"
    path.write_text('{"id": 1}\n' + f'{{"id": 2, "d": {nested_text(299)}}}\n' + '{"id": 3}\n'
                    + f'{{"id": 4, "d": {nested_text(1999)}}}\n' + '{"id": 5}\n')

    records = list(NdjsonExport(path).records())

    assert summary(records) == [
        (0, "line 1", {"id": 1}),
        (1, "line 2", f"line 2: the record is nested 300 levels deep; {DEPTH}"),
        (2, "line 3", {"id": 3}),
        (3, "line 4", f"line 4: the record is nested 2,000 levels deep; {DEPTH}"),
        (4, "line 5", {"id": 5}),
    ]
    assert records[1].raw is not None and records[1].raw.startswith('{"id": 2, "d": {"inner"')
    assert records[3].raw is not None and records[3].raw.startswith('{"id": 4, "d": {"inner"')
    assert len(records[3].raw) <= 2100  # kept for the error, cut short


def test_ndjson_too_many_fields_and_too_long_lines_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "o.ndjson"
    tags = orjson.dumps({"id": 2, "tags": list(range(20))}).decode()
    path.write_text('{"id": 1}\n' + tags + "\n" + '{"id": 3, "x": "' + "x" * 2000 + '"}\n'
                    + '{"id": 4}\n')

    records = list(NdjsonExport(path, limits=SMALL).records())

    assert summary(records) == [
        (0, "line 1", {"id": 1}),
        (1, "line 2", f"line 2: the record has 22 fields; {FIELDS}"),
        (2, "line 3", "line 3: longer than 1024 bytes (the line is skipped); a record may have "
                      "at most that many bytes (SEGBRIDGE_RECORD_MAX_BYTES)"),
        (3, "line 4", {"id": 4}),
    ]
    assert records[2].raw is not None and records[2].raw.endswith(" ... (2,019 bytes)")


def test_ndjson_a_flat_record_with_many_commas_in_its_strings_is_not_a_field_error(
        tmp_path: Path) -> None:
    path = tmp_path / "o.ndjson"
    path.write_text(orjson.dumps({"id": 1, "text": "," * 500, "deep": "[[[[" * 100}).decode()
                    + "\n")

    assert summary(list(NdjsonExport(path, limits=SMALL).records())) == [
        (0, "line 1", {"id": 1, "text": "," * 500, "deep": "[[[[" * 100})]


# -- CSV ------------------------------------------------------------------------------------


def test_csv_rows_past_the_caps_are_errors_and_the_next_rows_are_read(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    wide = ",".join(str(i) for i in range(12))
    long_line = "3," + "y" * 2000 + ",z"
    quoted = '4,"' + ("q" * 100 + "\n") * 15 + '",z'  # 16 lines of 101 bytes or less
    path.write_text("id,a,b\n1,x,y\n" + wide + "\n" + long_line + "\n5,x,y\n" + quoted + "\n"
                    + "6,x,y\n")

    records = list(CsvExport(path, limits=SMALL).records())

    assert summary(records) == [
        (0, "line 2", {"id": "1", "a": "x", "b": "y"}),
        (1, "line 3", f"line 3: the record has 12 fields; {FIELDS}; the header has 3"),
        (2, "line 4", "line 4: longer than 1024 bytes (the line is skipped); a record may have "
                      "at most that many bytes (SEGBRIDGE_RECORD_MAX_BYTES)"),
        (3, "line 5", {"id": "5", "a": "x", "b": "y"}),
        (4, "line 6", f"line 6: the record is 1,519 bytes; {BYTES}"),
        (5, "line 22", {"id": "6", "a": "x", "b": "y"}),
    ]
    assert records[4].raw is not None and records[4].raw.startswith("4,qqq")


def test_csv_a_header_wider_than_the_field_cap_fails_the_export(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text(",".join(f"c{i}" for i in range(11)) + "\n" + ",".join("1" * 11) + "\n")

    with pytest.raises(ExportError) as failed:
        list(CsvExport(path, limits=SMALL).records())

    assert "The header has 11 columns" in failed.value.message
    assert "SEGBRIDGE_RECORD_MAX_FIELDS" in failed.value.message


# -- JSON array -----------------------------------------------------------------------------


def test_json_items_too_deep_or_with_too_many_fields_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "o.json"
    path.write_text("[" + ",".join([
        '{"id": 1}', f'{{"id": 2, "d": {nested_text(299)}}}', '{"id": 3}',
        "[" * 2000 + "]" * 2000, orjson.dumps({"id": 5, "tags": list(range(20))}).decode(),
        '{"id": 6}']) + "]")

    records = list(JsonArrayExport(path, limits=SMALL).records())

    assert summary(records) == [
        (0, "item 1", {"id": 1}),
        (1, "item 2", f"item 2: the record is nested 300 levels deep; {DEPTH}"),
        (2, "item 3", {"id": 3}),
        (3, "item 4", f"item 4: the record is nested 2,000 levels deep; {DEPTH}"),
        (4, "item 5", f"item 5: the record has 22 fields; {FIELDS}"),
        (5, "item 6", {"id": 6}),
    ]
    kept = [r.raw for r in records if r.error is not None]
    assert len(kept) == 3 and all(raw and len(raw) <= 2100 for raw in kept)  # kept, cut short


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_json_items_over_the_size_cap_are_skipped_whole_and_the_rest_read(
        tmp_path: Path, encoding: str) -> None:
    # strings full of what a naive scanner would take for structure: quotes, brackets, commas
    tricky = '{"id": "big", "s": "' + 'a\\"],{\\\\' * 30000 + '", "n": [1, {"x": "],"}]}'
    text = ("[ {\"id\": 1},\n " + tricky + ",\n {\"id\": \"é3\"},\n" + tricky + ",{\"id\": 5}"
            + " " * 100_000 + ", {\"id\": 6}]\n")
    path = tmp_path / "o.json"
    path.write_bytes(text.encode(encoding))
    big = f"the record is {len(tricky):,} bytes; {BYTES}"

    records = list(JsonArrayExport(path, encoding=encoding, limits=SMALL).records())
    resumed = list(JsonArrayExport(path, encoding=encoding, limits=SMALL).records(2))

    assert summary(records) == [
        (0, "item 1", {"id": 1}), (1, "item 2", f"item 2: {big}"), (2, "item 3", {"id": "é3"}),
        (3, "item 4", f"item 4: {big}"), (4, "item 5", {"id": 5}), (5, "item 6", {"id": 6})]
    assert summary(resumed) == summary(records)[2:]
    assert records[1].raw is not None and records[1].raw.startswith('{"id": "big", "s": "a\\"')
    assert records[1].raw.endswith(f" ... ({len(tricky):,} bytes)")
    assert len(records[1].raw) <= 2100


def test_json_an_item_of_64_mb_is_never_held_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "o.json"
    with path.open("wb") as handle:
        handle.write(b'[{"id": 1}, {"id": 2, "blob": "')
        for _ in range(64):
            handle.write(b"x" * (1024 * 1024))
        handle.write(b'"}, {"id": 3}]')
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from segbridge.apps.files.json_array import JsonArrayExport
        errors = [r.error for r in JsonArrayExport(Path(sys.argv[1])).records()]
        assert errors[0] is None and errors[2] is None, errors
        assert "the record is 67,108,885 bytes" in errors[1], errors
        status = Path("/proc/self/status").read_text().splitlines()
        print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM")))
    """)

    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout) / 1024
    assert peak_mb < 48, f"peak memory {peak_mb:.0f} MB for a 64 MB item"


def test_json_an_item_nested_8000_deep_is_measured_not_built(tmp_path: Path) -> None:
    # ijson's builder needs memory in the square of the depth (8,000 levels: about 170 MB)
    path = tmp_path / "o.json"
    path.write_bytes(b'[{"id": 1}, ' + b"[" * 8000 + b"]" * 8000 + b', {"id": 3}]')
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from segbridge.apps.files.json_array import JsonArrayExport
        records = list(JsonArrayExport(Path(sys.argv[1])).records())
        assert [r.data for r in records] == [{"id": 1}, None, {"id": 3}], records
        assert records[1].error == ("item 2: the record is nested 8,000 levels deep; at most "
                                    "64 are allowed (SEGBRIDGE_RECORD_MAX_DEPTH)"), records
        status = Path("/proc/self/status").read_text().splitlines()
        print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM")))
    """)

    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout) / 1024
    assert peak_mb < 48, f"peak memory {peak_mb:.0f} MB for an item 8,000 levels deep"


# -- databases ------------------------------------------------------------------------------


def test_database_rows_over_the_size_cap_are_errors_and_wide_queries_fail(
        tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER, note TEXT)")
        db.executemany("INSERT INTO orders VALUES (?, ?)",
                       [(1, "short"), (2, "n" * 3000), (3, "short")])
    url = f"sqlite:///{path}"

    records = list(DatabaseExport(url, None, "SELECT id, note FROM orders ORDER BY id",
                                  limits=SMALL).records())
    columns = ", ".join(f"id AS c{i}" for i in range(11))
    with pytest.raises(ExportError) as wide:
        list(DatabaseExport(url, None, f"SELECT {columns} FROM orders", limits=SMALL).records())

    assert summary(records) == [
        (0, "row 1", {"id": 1, "note": "short"}),
        (1, "row 2", f"row 2: the record is 3,018 bytes; {BYTES}"),
        (2, "row 3", {"id": 3, "note": "short"}),
    ]
    assert records[1].raw is not None and len(records[1].raw) <= 2100
    assert "The query returns 11 columns" in wide.value.message
    assert "SEGBRIDGE_RECORD_MAX_FIELDS" in wide.value.message


# -- what a record error keeps ----------------------------------------------------------------


def test_a_record_error_keeps_small_data_whole_and_an_excerpt_of_large_data() -> None:
    small = ErrorRow(0, "line 1", "map", "userId: missing", "Orders", data={"id": 1})
    large = ErrorRow(1, "line 2", "map", "userId: missing", "Orders",
                     data={"id": 2, "blob": "x" * KEPT_DATA_BYTES})
    raw = ErrorRow(2, "line 3", "export", "invalid JSON", raw="y" * 50_000)

    assert small.data == {"id": 1} and small.reason == "userId: missing"
    assert large.data is None
    assert large.reason == (f"userId: missing (the record is too large to keep whole "
                            f"({KEPT_DATA_BYTES + 18:,} bytes); only an excerpt is kept, so it "
                            "cannot be retried as it is)")
    assert large.raw is not None and large.raw.startswith('{"id":2,"blob":"xxx')
    assert large.raw.endswith(f" ... ({KEPT_DATA_BYTES + 18:,} bytes)")
    assert len(large.raw) <= 2100
    assert raw.raw is not None and len(raw.raw) <= 2100
    assert raw.raw.endswith(" ... (50,000 bytes)")


# -- mapping and writing calls ----------------------------------------------------------------


class _Records:
    """Records given as they are (past the caps of any file export: only a retried error's
    data or a future source could be this deep)."""

    def __init__(self, records: list[SourceRecord]) -> None:
        self._records = records

    def records(self, start_position: int = 0) -> Any:
        return iter(self._records[start_position:])

    def read_share(self) -> float | None:
        return None


class _Import:
    def __init__(self) -> None:
        call = "track"
        self.name = "Orders"
        self.map_record = compile_mapping(call, {
            "userId": "customer_id", "event": {"constant": "Order Completed"},
            "properties": {"fields": {"details": "details"}}})
        self.ids = MessageIds("flow", self.name, call)


def test_a_call_too_deep_to_write_is_a_record_error_and_its_chunk_goes_on() -> None:
    deep = orjson.loads(nested_text(200))
    deeper = {"inner": {"inner": deep}}  # past orjson's 255 levels once in a call
    for _ in range(60):
        deeper = {"inner": deeper}
    records = [SourceRecord(i, f"row {i + 1}", {"customer_id": f"c{i}", "details": {"n": i}})
               for i in range(5)]
    records[2] = SourceRecord(2, "row 3", {"customer_id": "c2", "details": deeper})
    chunks: list[Chunk] = []
    producer = Producer(Source(_Records(records), [_Import()]),
                        lambda chunk: chunks.append(chunk) if chunk else None, None,
                        threading.Event())

    producer.run()

    assert producer.error is None
    [chunk] = chunks
    [(_index, items)] = chunk.batches
    assert [item.position for item in items] == [0, 1, 3, 4]
    [error] = chunk.errors
    assert (error.position, error.step, error.import_name) == (2, "map", "Orders")
    assert error.reason == ("the record cannot be mapped to a call: it is nested too deep (the "
                            "record is nested too deep to keep whole; only an excerpt is kept, "
                            "so it cannot be retried as it is)")
    assert error.data is None and error.raw is not None and len(error.raw) <= 2100

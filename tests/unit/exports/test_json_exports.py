"""NdjsonExport and JsonArrayExport: records, refs, positions and bad input; how much of its
file each file export has read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from segbridge.apps.files.csv_export import CsvExport
from segbridge.apps.files.json_array import JsonArrayExport
from segbridge.apps.files.ndjson import NdjsonExport
from segbridge.exports.contracts import SourceRecord
from segbridge.exports.errors import ExportError


def write(tmp_path: Path, content: bytes | str, name: str = "data.json") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def summary(records: list[SourceRecord]) -> list[tuple[int, str, Any]]:
    return [(r.position, r.ref, r.data if r.error is None else r.error) for r in records]


def ndjson(path: Path, start: int = 0, **options: Any) -> list[SourceRecord]:
    return list(NdjsonExport(path, **options).records(start))


def array(path: Path, start: int = 0, **options: Any) -> list[SourceRecord]:
    return list(JsonArrayExport(path, **options).records(start))


def test_ndjson_objects_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, '{"id": 1, "price": 9.5}\n\n  \r\n{"id": 2, "tags": ["a"]}\r\n')
    assert summary(ndjson(path)) == [(0, "line 1", {"id": 1, "price": 9.5}),
                                     (1, "line 4", {"id": 2, "tags": ["a"]})]


def test_ndjson_bad_lines_are_records_and_the_stream_goes_on(tmp_path: Path) -> None:
    content = (b'{"id": 1}\n{"id": 2}\n{"id": 3}\n[1, 2]\n{"id": 5,}\n"text"\n7\nnull\n'
               b'{"name": "Ren\xe9e"}\n{"id": 10}')
    records = ndjson(write(tmp_path, content))
    assert summary(records) == [
        (0, "line 1", {"id": 1}), (1, "line 2", {"id": 2}), (2, "line 3", {"id": 3}),
        (3, "line 4", "line 4: a JSON array, not an object"),
        (4, "line 5", "line 5: invalid JSON: trailing comma is not allowed at character 9"),
        (5, "line 6", "line 6: a JSON string, not an object"),
        (6, "line 7", "line 7: a JSON number, not an object"),
        (7, "line 8", "line 8: JSON null, not an object"),
        (8, "line 9", "line 9: not valid UTF-8 at byte 14"),
        (9, "line 10", {"id": 10}),
    ]
    assert records[3].raw == "[1, 2]"
    assert records[8].raw == '{"name": "Ren\ufffde"}'


def test_ndjson_bom_and_encoding(tmp_path: Path) -> None:
    assert ndjson(write(tmp_path, b'\xef\xbb\xbf{"a": 1}\n'))[0].data == {"a": 1}
    latin = write(tmp_path, '{"city": "Besançon"}\n'.encode("latin-1"), "latin.ndjson")
    assert ndjson(latin, encoding="latin-1")[0].data == {"city": "Besançon"}


def test_ndjson_start_position(tmp_path: Path) -> None:
    path = write(tmp_path, '{"a": 1}\n\nbad\n{"a": 2}\n[]\n{"a": 3}\n')
    full = ndjson(path)
    assert [r.position for r in full] == [0, 1, 2, 3, 4]
    for start in range(7):
        assert ndjson(path, start) == full[start:]


def test_ndjson_overlong_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{"a": 1}\n{"b": "' + "x" * 200 + '"}\n{"c": 3}\n')
    source = NdjsonExport(path)
    source.max_line_bytes = 64
    assert summary(list(source.records())) == [
        (0, "line 1", {"a": 1}), (1, "line 2", "line 2: longer than 64 bytes (the line is "
                                               "skipped); a record may have at most that "
                                               "many bytes (SEGBRIDGE_RECORD_MAX_BYTES)"),
        (2, "line 3", {"c": 3})]


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_ndjson_empty(tmp_path: Path, content: str) -> None:
    assert ndjson(write(tmp_path, content)) == []


def test_array_items(tmp_path: Path) -> None:
    path = write(tmp_path, ' \n[{"id": 1, "price": 9.95, "big": 9223372036854775807},'
                           '\n {"id": 2, "nested": {"x": [1.5]}}]\n')
    records = array(path)
    assert summary(records) == [
        (0, "item 1", {"id": 1, "price": 9.95, "big": 9223372036854775807}),
        (1, "item 2", {"id": 2, "nested": {"x": [1.5]}})]
    assert type(records[0].data["price"]) is float  # type: ignore[index]
    assert type(records[1].data["nested"]["x"][0]) is float  # type: ignore[index]


def test_integers_beyond_64_bits_stop_the_array(tmp_path: Path) -> None:
    # use_float=True parses numbers natively in yajl: a bigger integer overflows
    path = write(tmp_path, '[{"a": 1}, {"big": 123456789012345678901234}, {"c": 3}]')
    assert summary(array(path))[1] == (
        1, "item 2", "item 2: invalid JSON: parse error: integer overflow (reading stops here)")


def test_array_items_that_are_not_objects(tmp_path: Path) -> None:
    path = write(tmp_path, '[{"a": 1}, [1], "s", 2.5, true, null, {"b": 2}]')
    assert summary(array(path)) == [
        (0, "item 1", {"a": 1}), (1, "item 2", "item 2: a JSON array, not an object"),
        (2, "item 3", "item 3: a JSON string, not an object"),
        (3, "item 4", "item 4: a JSON number, not an object"),
        (4, "item 5", "item 5: a JSON boolean, not an object"),
        (5, "item 6", "item 6: JSON null, not an object"), (6, "item 7", {"b": 2})]
    assert array(path)[1].raw == "[1]"


@pytest.mark.parametrize(("content", "error"), [
    ('[{"a": 1}, {"b": tru}, {"c": 3}]', "item 2: invalid JSON: lexical error: invalid string "
                                         "in json text. (reading stops here)"),
    ('[{"a": 1}, {"b"', "item 2: invalid JSON: parse error: premature EOF (reading stops "
                        "here)"),
    ('[{"a": 1}] trailing', "item 2: invalid JSON: parse error: trailing garbage (reading "
                            "stops here)"),
    (b'[{"a": 1}, {"b": "\xff"}]', "item 2: invalid JSON: lexical error: invalid bytes in "
                                   "UTF8 string. (reading stops here)"),
])
def test_invalid_json_ends_the_array(tmp_path: Path, content: str | bytes, error: str) -> None:
    records = array(write(tmp_path, content))
    assert summary(records) == [(0, "item 1", {"a": 1}), (1, "item 2", error)]
    assert records[1].raw


@pytest.mark.parametrize("content", ['{"a": 1}', '"text"', "42"])
def test_a_file_that_is_not_an_array(tmp_path: Path, content: str) -> None:
    with pytest.raises(ExportError, match="a JSON export needs a top-level array") as caught:
        array(write(tmp_path, content))
    assert caught.value.cause == "not_an_array"


@pytest.mark.parametrize("content", ["", "  \n", "[]", " [ ] "])
def test_empty_arrays_and_files(tmp_path: Path, content: str) -> None:
    assert array(write(tmp_path, content)) == []


def test_array_bom_and_encoding(tmp_path: Path) -> None:
    assert array(write(tmp_path, b'\xef\xbb\xbf[{"a": 1}]'))[0].data == {"a": 1}
    latin = write(tmp_path, '[{"city": "Besançon"}]'.encode("latin-1"), "latin.json")
    assert array(latin, encoding="latin-1")[0].data == {"city": "Besançon"}


def test_array_start_position(tmp_path: Path) -> None:
    path = write(tmp_path, '[{"a": 1}, 2, {"a": 3}, {"a": 4}]')
    full = array(path)
    for start in range(6):
        assert array(path, start) == full[start:]


def test_array_is_streamed(tmp_path: Path) -> None:
    import tracemalloc

    item = '{"id": %d, "email": "someone%d@example.com", "note": "' + "n" * 200 + '"}'
    path = tmp_path / "big.json"
    with path.open("w") as handle:
        handle.write("[" + ",".join(item % (i, i) for i in range(20_000)) + "]")
    tracemalloc.start()
    try:
        count = sum(1 for _ in JsonArrayExport(path).records())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert path.stat().st_size > 5_000_000
    assert peak < 1_000_000


@pytest.mark.parametrize("kind", ["csv", "ndjson", "json"])
def test_file_exports_tell_how_much_of_the_file_they_have_read(tmp_path: Path,
                                                               kind: str) -> None:
    rows = [{"id": i, "name": f"customer {i}"} for i in range(40_000)]
    path = tmp_path / f"rows.{kind}"
    if kind == "csv":
        path.write_text("id,name\n" + "".join(f"{r['id']},{r['name']}\n" for r in rows))
        export: CsvExport | NdjsonExport | JsonArrayExport = CsvExport(path)
    elif kind == "ndjson":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        export = NdjsonExport(path)
    else:
        path.write_text(json.dumps(rows))
        export = JsonArrayExport(path)
    assert export.read_share() is None  # not opened yet
    records = export.records()
    shares = []
    for record in records:
        if record.position % 10_000 == 5_000:
            shares.append(export.read_share())
    assert shares == sorted(shares) and len(shares) == 4
    assert 0.05 < shares[0] < 0.3 and 0.3 < shares[1] < 0.55 and 0.8 < shares[3] < 1.0
    assert export.read_share() == 1.0  # read to the end and closed

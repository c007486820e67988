"""CsvExport: options, refs and positions, and every kind of bad input (each one record)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segbridge.apps.files.csv_export import CsvExport
from segbridge.exports.contracts import SourceRecord
from segbridge.exports.errors import ExportError


def write(tmp_path: Path, content: bytes | str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def read(path: Path, start: int = 0, **options: Any) -> list[SourceRecord]:
    return list(CsvExport(path, **options).records(start))


def summary(records: list[SourceRecord]) -> list[tuple[int, str, Any]]:
    return [(r.position, r.ref, r.data if r.error is None else r.error) for r in records]


def test_header_row_gives_the_names(tmp_path: Path) -> None:
    path = write(tmp_path, "id,email,name\n1,a@x.io,Ann\n2,b@x.io,Bob\n")
    assert summary(read(path)) == [
        (0, "line 2", {"id": "1", "email": "a@x.io", "name": "Ann"}),
        (1, "line 3", {"id": "2", "email": "b@x.io", "name": "Bob"}),
    ]


def test_explicit_names_make_the_first_line_data(tmp_path: Path) -> None:
    path = write(tmp_path, "1,Ann\n2,Bob")
    assert summary(read(path, header=["id", "name"])) == [
        (0, "line 1", {"id": "1", "name": "Ann"}), (1, "line 2", {"id": "2", "name": "Bob"})]


@pytest.mark.parametrize(("delimiter", "quote", "content", "said"), [
    (";", '"', 'a;b\n"x;y";"say ""hi"""\n', 'say "hi"'),
    ("\t", '"', 'a\tb\n"x;y"\tsay "hi"\n', 'say "hi"'),
    ("|", "'", "a|b\n'x;y'|'say ''hi'''\n", "say 'hi'"),
])
def test_delimiter_and_quote(tmp_path: Path, delimiter: str, quote: str, content: str,
                             said: str) -> None:
    [record] = read(write(tmp_path, content), delimiter=delimiter, quote=quote)
    assert record.data == {"a": "x;y", "b": said}


def test_values_stay_strings_and_empty_fields_stay_empty(tmp_path: Path) -> None:
    [record] = read(write(tmp_path, 'a,b,c\n,"", 2 \n'))
    assert record.data == {"a": "", "b": "", "c": " 2 "}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_a_byte_order_mark_is_skipped(tmp_path: Path, encoding: str) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfid,name\n1,Zo\xc3\xab\n")
    assert summary(read(path, encoding=encoding)) == [(0, "line 2", {"id": "1", "name": "Zoë"})]


@pytest.mark.parametrize(("encoding", "raw"), [("cp1252", b"caf\xe9 \x80"),
                                               ("latin-1", b"caf\xe9 \xa4")])
def test_single_byte_encodings(tmp_path: Path, encoding: str, raw: bytes) -> None:
    [record] = read(write(tmp_path, b"name\n" + raw + b"\n"), encoding=encoding)
    assert record.data == {"name": raw.decode(encoding)}


def test_crlf_lines(tmp_path: Path) -> None:
    path = write(tmp_path, 'a,b\r\n1,"x\r\ny"\r\n2,3\r\n')
    assert summary(read(path)) == [(0, "line 2", {"a": "1", "b": "x\r\ny"}),
                                   (1, "line 4", {"a": "2", "b": "3"})]


def test_quoted_newlines_keep_line_refs_right(tmp_path: Path) -> None:
    path = write(tmp_path, 'id,note\n1,"two\nlines"\n2,"three\n\nlines"\n3,x\n4,too,many\n')
    assert summary(read(path)) == [
        (0, "line 2", {"id": "1", "note": "two\nlines"}),
        (1, "line 4", {"id": "2", "note": "three\n\nlines"}),
        (2, "line 7", {"id": "3", "note": "x"}),
        (3, "line 8", "line 8: 3 fields, the header has 2"),
    ]


def test_last_line_without_newline(tmp_path: Path) -> None:
    assert summary(read(write(tmp_path, "a\n1\n2"))) == [(0, "line 2", {"a": "1"}),
                                                         (1, "line 3", {"a": "2"})]


@pytest.mark.parametrize("content", ["", "\n\n", "a,b,c\n", "a,b,c", "\n  \na,b\n\n"])
def test_empty_and_header_only_files(tmp_path: Path, content: str) -> None:
    assert read(write(tmp_path, content)) == []


def test_header_after_blank_lines(tmp_path: Path) -> None:
    assert summary(read(write(tmp_path, "\n\na,b\n1,2\n"))) == [
        (0, "line 4", {"a": "1", "b": "2"})]


def test_duplicate_and_empty_names_are_made_unique(tmp_path: Path) -> None:
    [record] = read(write(tmp_path, "email,,email,email_2\n1,2,3,4\n"))
    assert record.data == {"email": "1", "column_2": "2", "email_2": "3", "email_2_2": "4"}


def test_blank_lines_are_skipped_and_not_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n\n1,2\n   \n\r\n3,4\n")
    assert summary(read(path)) == [(0, "line 3", {"a": "1", "b": "2"}),
                                   (1, "line 6", {"a": "3", "b": "4"})]


def test_blank_lines_kept_are_one_empty_field(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n\n1,2\n")
    assert summary(read(path, skip_blank_lines=False)) == [
        (0, "line 2", "line 2: 1 field, the header has 2"), (1, "line 3", {"a": "1", "b": "2"})]
    single = write(tmp_path, "a\n1\n\n2\n", "single.csv")
    assert [r.data for r in read(single, skip_blank_lines=False)] == [
        {"a": "1"}, {"a": ""}, {"a": "2"}]
    assert [r.data for r in read(single)] == [{"a": "1"}, {"a": "2"}]


def test_wrong_field_counts_are_errors_with_raw_text(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,c,d\n1,2,3,4\n" + "5,6,7,8\n" * 4 + '1,2,3,4,"5"\n9,9\n')
    records = read(path)
    assert summary(records)[-2:] == [(5, "line 7", "line 7: 5 fields, the header has 4"),
                                     (6, "line 8", "line 8: 2 fields, the header has 4")]
    assert records[5].data is None and records[5].raw == '1,2,3,4,"5"'
    assert records[6].raw == "9,9"


def test_invalid_utf8_fails_only_its_line(tmp_path: Path) -> None:
    lines = [b"id,name,city,note"] + [b"%d,n,c,x" % i for i in range(1, 8)]
    lines.append(b"8,Paris,Ren\xe9e,x")  # line 9: byte 12 is \xe9 (1-based)
    lines.append(b"9,n,c,x")
    records = read(write(tmp_path, b"\n".join(lines) + b"\n"))
    assert len(records) == 9
    assert summary(records)[7] == (7, "line 9", "line 9: not valid UTF-8 at byte 12")
    assert records[7].raw == "8,Paris,Ren\ufffde,x"
    assert summary(records)[8] == (8, "line 10", {"id": "9", "name": "n", "city": "c",
                                                  "note": "x"})


def test_invalid_utf8_inside_a_quoted_field(tmp_path: Path) -> None:
    path = write(tmp_path, b'a,b\n1,"one\ntw\xffo"\n2,3\n')
    records = read(path)
    assert summary(records)[0] == (0, "line 2", "line 3: not valid UTF-8 at byte 3")
    assert records[-1].data == {"a": "2", "b": "3"}


def test_an_unterminated_quote_costs_one_record(tmp_path: Path) -> None:
    path = write(tmp_path, 'a,b\n1,2\n"3,4\n5,6\n7,8\n')
    assert summary(read(path)) == [
        (0, "line 2", {"a": "1", "b": "2"}),
        (1, "line 3", "line 3: unterminated quote: the file ends inside a quoted field"),
        (2, "line 4", {"a": "5", "b": "6"}),
        (3, "line 5", {"a": "7", "b": "8"}),
    ]


def test_a_quote_closed_lines_later(tmp_path: Path) -> None:
    path = write(tmp_path, 'a,b\n"1,2\n3,4\n"x"y,5\n6,7\n')
    records = read(path)
    assert summary(records)[0] == (
        0, "line 2", "line 2: ',' expected after '\"' on line 4; is the quote opened on "
                     "line 2 closed?")
    assert records[0].raw == '"1,2\n3,4\n"x"y,5'
    assert summary(records)[1:] == [(1, "line 3", {"a": "3", "b": "4"}),
                                    (2, "line 4", "line 4: ',' expected after '\"'"),
                                    (3, "line 5", {"a": "6", "b": "7"})]


def test_text_after_a_closing_quote(tmp_path: Path) -> None:
    assert summary(read(write(tmp_path, 'a,b\n"x"y,1\n2,3\n'))) == [
        (0, "line 2", "line 2: ',' expected after '\"'"), (1, "line 3", {"a": "2", "b": "3"})]


def test_a_field_over_the_csv_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n1," + "x" * 140_000 + "\n2,3\n")
    assert summary(read(path)) == [(0, "line 2", "line 2: a field is longer than 131072 "
                                                 "characters"),
                                   (1, "line 3", {"a": "2", "b": "3"})]


def test_an_overlong_line_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n1,2\n" + "x," * 100 + "y\n3,4\n")
    source = CsvExport(path)
    source.max_line_bytes = 64
    assert summary(list(source.records())) == [
        (0, "line 2", {"a": "1", "b": "2"}),
        (1, "line 3", "line 3: longer than 64 bytes (the line is skipped); a record may have "
                      "at most that many bytes (SEGBRIDGE_RECORD_MAX_BYTES)"),
        (2, "line 4", {"a": "3", "b": "4"}),
    ]


def test_errors_far_from_the_start_use_checkpoints(tmp_path: Path) -> None:
    rows = [b"%d,v%d" % (i, i) for i in range(1000)]
    rows[300] = b"300"  # fewer fields
    rows[700] = b"700,\xff"  # invalid UTF-8
    rows[900] = b'"900,v900'  # a quote never closed
    records = read(write(tmp_path, b"id,v\n" + b"\n".join(rows) + b"\n"))
    assert len(records) == 1000
    assert {r.position: r.error for r in records if r.error} == {
        300: "line 302: 1 field, the header has 2",
        700: "line 702: not valid UTF-8 at byte 5",
        900: "line 902: unterminated quote: the file ends inside a quoted field"}
    assert [r.ref for r in records[-3:]] == ["line 999", "line 1000", "line 1001"]
    assert records[-1].data == {"id": "999", "v": "v999"}


def test_start_position_gives_the_same_records(tmp_path: Path) -> None:
    content = ('a,b\n1,2\n\n3\n"4\n5",6\n7,\xff\n"8,9\n10,11\n')
    path = write(tmp_path, content.encode("latin-1"))
    full = read(path)
    assert len(full) == 6
    for start in range(len(full) + 2):
        assert read(path, start) == full[start:]


def test_positions_are_stable_across_runs(tmp_path: Path) -> None:
    path = write(tmp_path, "a\n1\n\n2\nx,y\n3\n")
    assert read(path) == read(path)
    assert [r.position for r in read(path)] == [0, 1, 2, 3]


def test_an_undecodable_header_stops_the_export(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="header on line 1 is not valid utf-8 at byte 2"):
        read(write(tmp_path, b"a\xff,b\n1,2\n"))


@pytest.mark.parametrize(("options", "message"), [
    ({"delimiter": ";;"}, "delimiter must be one character"),
    ({"quote": ""}, "quote must be one character"),
    ({"delimiter": "\n"}, "delimiter must be one character"),
    ({"delimiter": '"'}, "must differ"),
    ({"header": False}, "header: false needs the column names"),
    ({"header": []}, "at least one column name"),
    ({"header": "id,name"}, "a list of column names"),
    ({"encoding": "klingon"}, "Unknown encoding"),
    ({"encoding": "utf-16"}, "convert the file to UTF-8"),
])
def test_bad_options(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ExportError, match=message) as caught:
        CsvExport(write(tmp_path, "a\n1\n"), **options)
    assert caught.value.cause == "config"


def test_a_missing_file_or_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist") as caught:
        read(tmp_path / "missing.csv")
    assert caught.value.cause == "file_not_found"
    with pytest.raises(ExportError, match="is a folder"):
        read(tmp_path)


@pytest.mark.parametrize("seed", range(60))
def test_messy_files_never_break_the_stream(tmp_path: Path, seed: int) -> None:
    import random

    rng = random.Random(seed)
    pieces = [b"a", b"b,c", b'"', b'""', b",", b"\n", b"\r\n", b"\xff", b"\xc3\xa9", b" ",
              b'"x\ny"', b"1,2,3", b"\n\n"]
    content = b"h1,h2,h3\n" + b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 120)))
    path = write(tmp_path, content)
    source = CsvExport(path)
    source.max_line_bytes = rng.choice([8, 64, 1 << 20])
    full = list(source.records())
    assert [r.position for r in full] == list(range(len(full)))
    lines = [int(r.ref.split()[1]) for r in full]
    assert lines == sorted(lines) and len(set(lines)) == len(lines)
    assert all((r.data is None) != (r.error is None) for r in full)
    for start in (1, len(full) // 2, len(full)):
        assert list(source.records(start)) == full[start:]

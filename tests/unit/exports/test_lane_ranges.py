"""Lanes that read only their own blocks of a CSV or NDJSON file: the starts found by one scan
(``boundaries.py``) give each lane exactly the records, positions, refs and errors one pass over
the whole file gives; a file where a byte split cannot be proven gets no starts (its lanes
read the whole file, as before)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import segbridge.apps.files.boundaries as boundaries_module
from segbridge.apps.files.boundaries import Boundaries, file_boundaries
from segbridge.apps.files.csv_export import CsvExport
from segbridge.apps.files.ndjson import NdjsonExport
from segbridge.exports.contracts import SourceRecord
from segbridge.runs.producer import Lane

Row = tuple[int, str, Any, str | None, str | None]


def row(record: SourceRecord) -> Row:
    return record.position, record.ref, record.data, record.error, record.raw


def export_of(kind: str, path: Path, options: dict[str, Any] | None = None) -> Any:
    return CsvExport(path, **(options or {})) if kind == "csv" else NdjsonExport(path)


def one_pass(kind: str, path: Path, start: int = 0,
             options: dict[str, Any] | None = None) -> list[Row]:
    return [row(r) for r in export_of(kind, path, options).records(0) if r.position >= start]


def in_lanes(kind: str, path: Path, found: Boundaries, count: int, *, start: int = 0,
             options: dict[str, Any] | None = None, owned: bool = False) -> list[Row]:
    """Every lane's records (each lane its own export, as in its process), in input order.
    ``owned``: only those of the lane's blocks (a lane reading the whole file may also give
    others' unreadable records, which its producer leaves out)."""
    rows: list[Row] = []
    for index in range(count):
        export = export_of(kind, path, options)
        export.boundaries = found
        lane = Lane(index, count, found.every, start)
        rows.extend(row(r) for r in export.records_in(lane) if not owned or lane.owns(r.position))
    return sorted(rows)


def quoted_csv(path: Path, rows: int, *, line_end: bytes = b"\n", bom: bool = False) -> Path:
    """Orders with quoted line ends (several around each block boundary of 7), quoted
    delimiters and quotes, blank and whitespace lines, a line that is not UTF-8, a line with
    too many fields, and a last line without a line end."""
    lines = [b"id,name,note"]
    for i in range(rows):
        note = b'"two\nlines"' if i % 7 in (6, 0) else b'"a ""quoted"" one, too"' \
            if i % 5 == 0 else b"plain"
        line = b"%d,n%d,%s" % (i, i, note)
        if i % 23 == 4:
            line = b"%d,caf\xe9,x" % i  # not UTF-8: one error record
        if i % 29 == 5:
            line += b",extra"
        lines.append(line)
        if i % 11 == 3:
            lines.extend([b"", b"   ", b'""', b'" "'])  # blank: not records
    body = line_end.join(line.replace(b"\n", line_end) for line in lines)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body)
    return path


def messy_ndjson(path: Path, rows: int, line_end: bytes = b"\n") -> Path:
    lines = []
    for i in range(rows):
        if i % 13 == 2:
            lines.extend([b"", b"  \t"])
        lines.append(b'{"id": %d, "name": "n%d"}' % (i, i) if i % 17 != 3 else
                     b'{"id": %d,' % i if i % 2 else b"[1, 2]")
    path.write_bytes(line_end.join(lines) + line_end)
    return path


@pytest.mark.parametrize(("line_end", "bom"), [(b"\n", False), (b"\r\n", True)])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_csv_lanes_read_their_blocks_as_one_pass_does(tmp_path: Path, line_end: bytes,
                                                      bom: bool, count: int) -> None:
    path = quoted_csv(tmp_path / "o.csv", 300, line_end=line_end, bom=bom)
    found = file_boundaries("csv", path, {}, None, 0, 7)

    assert found is not None
    whole = one_pass("csv", path)
    assert in_lanes("csv", path, found, count) == whole
    refs = {r[1]: r for r in whole}
    assert refs["line 2"][2] == {"id": "0", "name": "n0",
                                 "note": "two" + line_end.decode() + "lines"}
    assert any(r[3] and "not valid UTF-8" in r[3] for r in whole)
    assert any(r[3] and "the header has 3" in r[3] for r in whole)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_ndjson_lanes_read_their_blocks_as_one_pass_does(tmp_path: Path, count: int) -> None:
    for line_end in (b"\n", b"\r\n"):
        path = messy_ndjson(tmp_path / "o.ndjson", 200, line_end)
        found = file_boundaries("ndjson", path, {}, None, 0, 5)
        assert found is not None
        whole = one_pass("ndjson", path)
        assert in_lanes("ndjson", path, found, count) == whole
        assert any(r[3] and "invalid JSON" in r[3] for r in whole)


def test_ndjson_lanes_without_starts_parse_only_their_lines(tmp_path: Path) -> None:
    path = messy_ndjson(tmp_path / "o.ndjson", 100)
    rows = []
    for index in range(3):
        lane = Lane(index, 3, 4, start=2)
        own = [row(r) for r in NdjsonExport(path).records_in(lane)]
        assert own and all(lane.owns(r[0]) for r in own)  # the others are not parsed
        rows.extend(own)
    assert sorted(rows) == one_pass("ndjson", path, start=2)


def test_the_scan_finds_the_same_starts_in_any_piece_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = quoted_csv(tmp_path / "o.csv", 400, line_end=b"\r\n")
    whole = file_boundaries("csv", path, {}, None, 3, 7)
    for piece, step in ((5, 3), (64, 8), (4096, 100)):
        monkeypatch.setattr(boundaries_module, "PIECE_BYTES", piece)
        monkeypatch.setattr(boundaries_module, "STEP_BYTES", step)
        assert file_boundaries("csv", path, {}, None, 3, 7) == whole


def test_a_resumed_run_and_a_restarted_lane_read_from_their_block(tmp_path: Path) -> None:
    """From a checkpoint (the run's start), and a lane started again from a later block
    (``LaneProcess(first_block=...)``: its spec starts there, its index shifted)."""
    path = quoted_csv(tmp_path / "o.csv", 300)
    found = file_boundaries("csv", path, {}, None, 45, 7)
    assert found is not None
    assert in_lanes("csv", path, found, 3, start=45) == one_pass("csv", path, start=45)

    first_block, index = 10, 1  # lane 1 died; blocks before 10 were read
    restarted = 45 + first_block * 7
    export = CsvExport(path)
    export.boundaries = found
    lane = Lane((index - first_block) % 3, 3, 7, restarted)
    rows = [row(r) for r in export.records_in(lane)]
    assert rows == [r for r in one_pass("csv", path, start=restarted)
                    if (r[0] - 45) // 7 % 3 == index]


def test_a_header_given_in_the_options_and_another_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes(b"".join(b'%d;"a;\nb";%d\n' % (i, i) if i % 3 else b"%d;x;%d\n\n" % (i, i)
                              for i in range(100)))
    options = {"header": ["id", "note", "n"], "delimiter": ";"}
    found = file_boundaries("csv", path, options, None, 0, 6)
    assert found is not None
    assert in_lanes("csv", path, found, 2, options=options) == \
        one_pass("csv", path, options=options)


@pytest.mark.parametrize(("content", "why"), [
    (b'id,name\n1,ab"c\n2,"x\ny"\n', "a quote inside an unquoted field (read literally)"),
    (b'id,name\n1,"ab"c\n2,d\n', "text after a closing quote"),
    (b'id,name\n1,"never closed\n2,d\n', "an unterminated quote"),
    (b"id,name\n1,a\rb\n2,c\n", "a carriage return inside a line"),
    (b"id\n1\n2\n", "one column: every line may be blank"),
    (b'id,name\n1,"a\n\xff"\n2,c\n', "an undecodable line inside a quoted record"),
    (b"", "an empty file"),
    (b"id,\xffname\n1,2\n", "a header that cannot be read"),
])
def test_a_csv_whose_starts_cannot_be_proven_keeps_whole_file_lanes(
    tmp_path: Path, content: bytes, why: str,
) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes(content)
    assert file_boundaries("csv", path, {}, None, 0, 1) is None, why


def test_records_over_the_size_limits_keep_whole_file_lanes(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes(b"id,name\n1,%s\n2,b\n" % (b"x" * 2000))
    assert file_boundaries("csv", path, {}, {"max_bytes": 1000}, 0, 1) is None
    assert file_boundaries("csv", path, {}, {"max_bytes": 4000}, 0, 1) is not None
    lines = tmp_path / "o.ndjson"
    lines.write_bytes(b'{"a": "%s"}\n{"b": 1}\n' % (b"x" * 2000))
    assert file_boundaries("ndjson", lines, {}, {"max_bytes": 1000}, 0, 1) is None


def test_other_encodings_and_types(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes("id,name\n1,café\n2,\x81\n".encode("latin-1").replace(b"\x81", b"\x81"))
    found = file_boundaries("csv", path, {"encoding": "cp1252"}, None, 0, 1)
    assert found is not None  # one byte per character: \x81 is one error line
    options = {"encoding": "cp1252"}
    assert in_lanes("csv", path, found, 2, options=options) == \
        one_pass("csv", path, options=options)
    assert file_boundaries("csv", path, {"encoding": "shift_jis"}, None, 0, 1) is None
    assert file_boundaries("json", path, {}, None, 0, 1) is None
    assert file_boundaries("csv", tmp_path / "missing.csv", {}, None, 0, 1) is None


@pytest.mark.parametrize("encoding", ["iso2022_jp", "hz", "raw_unicode_escape"])
def test_encodings_with_escapes_keep_whole_file_lanes(tmp_path: Path, encoding: str) -> None:
    """A full-width space alone on a line is a blank line to one pass (decoded, stripped)
    and several ASCII bytes to a scan on bytes: such encodings are never split (the scan
    had counted it as a record, and every record after it moved by one)."""
    path = tmp_path / "o.csv"
    lines = ["id,name", *(f"{i},n{i}" for i in range(40))]
    lines.insert(4, "\u3000")
    path.write_bytes("\n".join(lines).encode(encoding) + b"\n")
    options = {"encoding": encoding}

    assert file_boundaries("csv", path, options, None, 0, 7) is None
    assert len(one_pass("csv", path, options=options)) == 40


def test_a_file_rewritten_with_its_size_and_modification_time_kept_is_read_whole(
        tmp_path: Path) -> None:
    """``cp -p``, ``rsync -t --inplace`` or ``touch -r`` after the scan: the same size and
    mtime, other starts; the lanes see another file (its change time) and read it whole."""
    path = tmp_path / "o.csv"
    path.write_bytes(b"id,name\n" + b"".join(b"%d,%s\n" % (i, b"nn" if i % 2 else b"n")
                                            for i in range(60)))
    found = file_boundaries("csv", path, {}, None, 0, 7)
    assert found is not None
    before = os.stat(path)
    rewritten = b"id,name\n" + b"".join(b"%d,name-%d\n" % (i, i) for i in range(60))
    rewritten = rewritten[:rewritten.rfind(b"\n", 0, before.st_size) + 1]
    path.write_bytes(rewritten.ljust(before.st_size, b" "))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (before.st_size,
                                                                  before.st_mtime_ns)

    assert in_lanes("csv", path, found, 3, owned=True) == one_pass("csv", path)


@pytest.mark.parametrize("kind", ["csv", "ndjson"])
def test_a_file_changed_after_the_scan_is_read_whole_by_each_lane(tmp_path: Path,
                                                                   kind: str) -> None:
    path = quoted_csv(tmp_path / "o.csv", 100) if kind == "csv" else \
        messy_ndjson(tmp_path / "o.ndjson", 100)
    found = file_boundaries(kind, path, {}, None, 0, 7)
    assert found is not None
    path.write_bytes(path.read_bytes().replace(b"n1", b"name 1"))  # the starts moved

    assert in_lanes(kind, path, found, 2, owned=True) == one_pass(kind, path)


def test_blank_lines_kept_as_records_and_a_given_header_after_a_bom(tmp_path: Path) -> None:
    path = quoted_csv(tmp_path / "o.csv", 120, line_end=b"\r\n", bom=True)
    for options in ({"skip_blank_lines": False}, {"header": ["a", "b", "c"]}):
        found = file_boundaries("csv", path, options, None, 0, 5)
        assert found is not None
        whole = one_pass("csv", path, options=options)
        assert in_lanes("csv", path, found, 3, options=options) == whole
    assert any(r[3] and "1 field, the header has 3" in r[3] for r in
               one_pass("csv", path, options={"skip_blank_lines": False}))


def test_a_stopped_run_stops_the_scan(tmp_path: Path) -> None:
    path = quoted_csv(tmp_path / "o.csv", 50)
    assert file_boundaries("csv", path, {}, None, 0, 7, stop=lambda: True) is None
    assert file_boundaries("csv", path, {}, None, 0, 7, stop=lambda: False) is not None


FIELDS = [b"a", b"bc", b"", b'"q"', b'"x,y"', b'"m\nl"', b'"d""q"', b" ", b"\xc3\xa9", b'"  "',
          b'""', b"\xff"]
STRAY = [b'a"b', b'"a"b', b'ab"']


@pytest.mark.parametrize("seed", range(6))
def test_random_csvs_read_in_lanes_as_one_pass_or_not_split(tmp_path: Path, seed: int) -> None:
    """Random small CSVs (quoted line ends, doubled quotes, blank lines, CRLF, BOM, bad bytes,
    now and then a stray quote): a file the scan splits reads in lanes as in one pass."""
    import random

    rnd = random.Random(seed)
    split = 0
    for n in range(40):
        lines = [b"h1,h2,h3"]
        for _ in range(rnd.randint(0, 60)):
            luck = rnd.random()
            if luck < 0.08:
                lines.append(rnd.choice([b"", b"   ", b'""', b'" "', b'"\n"']))
            else:
                choices = FIELDS + (STRAY if rnd.random() < 0.01 else []) if n % 2 else \
                    FIELDS[:-1]  # every other file: no bad bytes
                lines.append(b",".join(rnd.choice(choices) for _ in range(3)))
        line_end = rnd.choice([b"\n", b"\r\n"])
        path = tmp_path / f"{n}.csv"
        path.write_bytes(rnd.choice([b"", b"\xef\xbb\xbf"]) + line_end.join(lines) +
                         rnd.choice([line_end, b""]))
        every, start, count = rnd.randint(1, 7), rnd.randint(0, 5), rnd.randint(1, 4)
        found = file_boundaries("csv", path, {}, None, start, every)
        if found is not None:
            split += 1
            assert in_lanes("csv", path, found, count, start=start) == \
                one_pass("csv", path, start=start), path.read_bytes()
    assert split >= 15, split  # most files without bad bytes are split

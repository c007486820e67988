"""ParquetExport: values as JSON (zones, decimals, nested types, nulls), positions and refs
across the parts of a folder, resume from inside a row group, column selection, caps, and
files that are not Parquet or are damaged (an ExportError naming the file)."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segbridge.apps.database.convert import convert_value
from segbridge.apps.files.parquet import (
    ParquetExport,
    columns_read,
    parquet_parts,
    read_bytes,
)
from segbridge.apps.files.parquet_values import column_values
from segbridge.core.errors import ValidationFailed
from segbridge.exports.contracts import SourceRecord
from segbridge.exports.errors import ExportError
from segbridge.exports.limits import RecordLimits
from segbridge.flows.document import parse_flow_document
from segbridge.runs.producer import Lane

PARIS = ZoneInfo("Europe/Paris")


def write(path: Path, table: pa.Table, row_group_size: int | None = None) -> Path:
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def read(paths: list[Path], start: int = 0, **options: object) -> list[SourceRecord]:
    return list(ParquetExport(paths, **options).records(start))  # type: ignore[arg-type]


def values_of(column: pa.Array) -> list[object]:
    """The column's JSON values, every one of which has one."""
    values, problems = column_values(column)
    assert problems == {}
    return values


def numbered(count: int, first: int = 0) -> pa.Table:
    ids = list(range(first, first + count))
    return pa.table({"id": ids, "email": [f"u{n}@x.io" for n in ids]})


def test_types_become_json_faithfully(tmp_path: Path) -> None:
    table = pa.table({
        "at_paris": pa.array([datetime(2024, 5, 1, 12, 0, tzinfo=PARIS), None],
                             pa.timestamp("us", tz="Europe/Paris")),
        "at_utc_ns": pa.array([datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC), None],
                              pa.timestamp("ns", tz="UTC")),
        "naive": pa.array([datetime(2024, 5, 1, 10, 30), None], pa.timestamp("ms")),
        "day": pa.array([date(2024, 2, 29), None]),
        "clock": pa.array([time(8, 15, 30), None]),
        "took": pa.array([timedelta(seconds=90, milliseconds=500), None]),
        "price": pa.array([Decimal("12.50"), None], pa.decimal128(10, 2)),
        "big_id": pa.array([Decimal("12345678901234567890"), None], pa.decimal128(38, 0)),
        "blob": pa.array([b"\x00\xffhi", None]),
        "ratio": pa.array([float("nan"), 0.5]),
        "tags": pa.array([["a", None, "b"], None]),
        "address": pa.array([{"city": "Lyon", "since": date(2020, 1, 2)}, None]),
        "attrs": pa.array([[("plan", 1), ("seats", 3)], None],
                          pa.map_(pa.string(), pa.int64())),
        "events": pa.array([[{"at": datetime(2024, 1, 1, tzinfo=UTC), "n": 1}], []],
                           pa.list_(pa.struct([("at", pa.timestamp("s", tz="UTC")),
                                               ("n", pa.int32())]))),
        "level": pa.array(["gold", None]).dictionary_encode(),
        "flag": pa.array([True, None]),
        "nothing": pa.array([None, None], pa.null()),
    })
    first, second = (r.data for r in read([write(tmp_path / "t.parquet", table)]))
    assert first == {
        "at_paris": "2024-05-01T12:00:00+02:00",
        "at_utc_ns": "2024-05-01T10:00:00.123456+00:00",
        "naive": "2024-05-01T10:30:00",
        "day": "2024-02-29", "clock": "08:15:30", "took": 90.5,
        "price": 12.5, "big_id": 12345678901234567890,
        "blob": base64.b64encode(b"\x00\xffhi").decode(), "ratio": None,
        "tags": ["a", None, "b"], "address": {"city": "Lyon", "since": "2020-01-02"},
        "attrs": {"plan": 1, "seats": 3},
        "events": [{"at": "2024-01-01T00:00:00+00:00", "n": 1}],
        "level": "gold", "flag": True, "nothing": None}
    assert second is not None
    assert second["ratio"] == 0.5 and second["events"] == []
    assert {k for k, v in second.items() if v is None} == set(first) - {"ratio", "events"}
    orjson.dumps(first)  # every value is JSON as it stands


def test_positions_and_refs_run_on_across_the_parts_of_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "orders"
    folder.mkdir()
    write(folder / "part-0002.parquet", numbered(2, first=3))
    write(folder / "part-0001.parquet", numbered(3))
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / ".part-0001.parquet.crc").write_bytes(b"x")
    records = read(parquet_parts(folder), folder=True)
    assert [(r.position, r.ref, r.data and r.data["id"]) for r in records] == [
        (0, "part-0001.parquet row 1", 0), (1, "part-0001.parquet row 2", 1),
        (2, "part-0001.parquet row 3", 2), (3, "part-0002.parquet row 1", 3),
        (4, "part-0002.parquet row 2", 4)]


def test_a_single_file_is_numbered_by_row(tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", numbered(2))
    assert [r.ref for r in read([path])] == ["row 1", "row 2"]
    assert parquet_parts(path) == [path]


@pytest.mark.parametrize("start", [0, 1, 6, 7, 10, 15, 16, 17, 29, 30, 45])
def test_resume_gives_the_same_records_as_one_full_read(tmp_path: Path, start: int) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    write(folder / "a.parquet", numbered(16), row_group_size=7)  # groups 7, 7, 2
    write(folder / "b.parquet", numbered(14, first=16), row_group_size=5)
    parts = parquet_parts(folder)
    full = read(parts, batch_rows=3)
    assert [r.position for r in full] == list(range(30))
    assert read(parts, start, batch_rows=3) == full[start:]


def test_resume_reads_no_row_group_before_the_start(tmp_path: Path) -> None:
    """The first row group is damaged: a run resumed past it never touches it."""
    path = write(tmp_path / "t.parquet", numbered(20), row_group_size=10)
    first_group = pq.ParquetFile(path).metadata.row_group(0).column(1)
    data = bytearray(path.read_bytes())
    offset = first_group.data_page_offset
    data[offset + 8: offset + 40] = b"\xde\xad" * 16
    path.write_bytes(bytes(data))
    assert [r.data and r.data["id"] for r in read([path], 12)] == list(range(12, 20))
    with pytest.raises(ExportError, match=r"t\.parquet cannot be read after row 0"):
        read([path])


def test_columns_read_only_those(tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", numbered(2))
    assert [r.data for r in read([path], columns=["email"])] == [
        {"email": "u0@x.io"}, {"email": "u1@x.io"}]
    with pytest.raises(ExportError, match=r"t\.parquet has no column mail; its columns are "
                                          "id, email"):
        read([path], columns=["mail"])


def test_a_file_that_is_not_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "orders.parquet"
    path.write_bytes(b"id,email\n1,a@x.io\n")
    with pytest.raises(ExportError, match=r"orders\.parquet is not a readable Parquet file") \
            as caught:
        read([path])
    assert caught.value.cause == "file_error"


def test_a_cut_file_fails_before_any_record(tmp_path: Path) -> None:
    path = write(tmp_path / "cut.parquet", numbered(50))
    path.write_bytes(path.read_bytes()[:-30])
    export = ParquetExport([path])
    with pytest.raises(ExportError, match=r"cut\.parquet is not a readable Parquet file"):
        next(export.records())


def test_a_missing_file_and_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist") as caught:
        read([tmp_path / "nope.parquet"])
    assert caught.value.cause == "file_not_found"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match=r"holds no \.parquet files"):
        parquet_parts(tmp_path / "empty")


def test_a_record_past_the_size_cap_is_one_error_record(tmp_path: Path) -> None:
    table = pa.table({"id": [1, 2, 3], "note": ["short", "x" * 5000, "ok"]})
    path = write(tmp_path / "t.parquet", table)
    records = read([path], limits=RecordLimits(max_bytes=1024))
    assert [r.data for r in records] == [{"id": 1, "note": "short"}, None,
                                         {"id": 3, "note": "ok"}]
    bad = records[1]
    assert bad.ref == "row 2" and bad.error is not None and bad.error.startswith("row 2: ")
    assert bad.raw is not None and len(bad.raw) < 5000


def test_read_share_follows_the_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", numbered(10), row_group_size=5)
    export = ParquetExport([path], batch_rows=5)
    assert export.read_share() is None
    records = export.records()
    next(records)
    assert export.read_share() == 0.5
    list(records)
    assert export.read_share() == 1.0


def test_lanes_read_their_blocks_and_together_everything(tmp_path: Path) -> None:
    """records_in(lane): each lane its own blocks, row groups without any of them unread."""
    path = write(tmp_path / "t.parquet", numbered(100), row_group_size=30)
    full = read([path])
    lanes = [Lane(index, 3, 7, start=5) for index in range(3)]
    shares = [list(ParquetExport([path], batch_rows=8).records_in(lane)) for lane in lanes]
    for lane, share in zip(lanes, shares, strict=True):
        assert share == [r for r in full if lane.owns(r.position)]
    assert sorted(r.position for share in shares for r in share) == list(range(5, 100))


def test_a_lane_skips_row_groups_it_has_no_block_in(tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", numbered(40), row_group_size=10)
    data = bytearray(path.read_bytes())
    second_group = pq.ParquetFile(path).metadata.row_group(1).column(1).data_page_offset
    data[second_group + 8: second_group + 40] = b"\xde\xad" * 16
    path.write_bytes(bytes(data))
    lane = Lane(0, 2, 10)  # blocks 0-9 and 20-29: never the damaged group 10-19
    assert [r.position for r in ParquetExport([path]).records_in(lane)] == [
        *range(10), *range(20, 30)]


@pytest.mark.parametrize("columns", [[], "email", ["id", ""], [1]])
def test_the_flow_document_takes_columns_as_a_list_of_names(columns: object) -> None:
    doc = {"name": "Orders", "integration": "Shop",
           "export": {"type": "parquet", "path": "/srv/orders.parquet", "columns": columns},
           "imports": [{"name": "Track", "connection": "Segment", "call": "track",
                        "mapping": {"userId": "id", "event": {"constant": "Order"}}}]}
    with pytest.raises(ValidationFailed) as caught:
        parse_flow_document(doc)
    assert [(p.field, p.message) for p in caught.value.problems] == [
        ("export.columns", "use a list of column names (leave it out to read every column)")]
    doc["export"]["columns"] = ["id", "email"]  # type: ignore[index]
    assert parse_flow_document(doc).export is not None


def test_what_reading_costs_is_the_decoded_size_not_the_size_on_disk(tmp_path: Path) -> None:
    """Lanes are decided by what reading costs: compressed, repetitive rows are small on
    disk but cost as much to read as their decoded size (estimated from the first rows)."""
    count = 50_000
    table = pa.table({"id": list(range(count)),
                      "status": ["paid, shipped and delivered"] * count,
                      "currency": ["EUR"] * count})
    path = write(tmp_path / "orders.parquet", table, row_group_size=10_000)

    estimate = read_bytes(path)

    assert estimate is not None and path.stat().st_size * 5 < estimate
    assert abs(estimate - table.nbytes) < table.nbytes * 0.05
    narrow = read_bytes(path, ["id"])  # only the columns read count
    assert narrow is not None and abs(narrow - table.select(["id"]).nbytes) < 8 * count * 0.05


def test_what_reading_costs_for_an_empty_or_unreadable_file(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.parquet", numbered(0))
    text = tmp_path / "orders.parquet"
    text.write_text("order_id,email\n1,a@x.io\n")

    assert read_bytes(empty) == 0
    assert read_bytes(text) is None  # the run's own export says what is wrong
    assert read_bytes(tmp_path / "gone.parquet") is None


def test_the_columns_read_are_the_ones_the_flow_names_in_the_files_order(
        tmp_path: Path) -> None:
    table = pa.table({"id": [1], "email": ["a@x.io"], "plan": ["pro"], "notes": ["long"]})
    path = write(tmp_path / "users.parquet", table)
    folder = tmp_path / "parts"
    folder.mkdir()
    write(folder / "part-0001.parquet", table)

    assert columns_read(path, {"plan", "id", "not_in_the_file"}) == ["id", "plan"]
    assert columns_read(folder, frozenset({"email"})) == ["email"]
    write(folder / "part-0002.parquet", pa.table({"id": [2], "seats": [3]}))
    assert columns_read(folder, {"seats", "email", "id"}) == ["id", "email", "seats"]  # any part
    assert columns_read(path, set()) is None  # constants only: every column, as before
    assert columns_read(tmp_path / "gone.parquet", {"id"}) is None  # the export says why
    records = read([path], columns=columns_read(path, {"email", "id"}))
    assert [record.data for record in records] == [{"id": 1, "email": "a@x.io"}]


ZONES = (None, "UTC", "Europe/Paris", "America/St_Johns", "Asia/Kolkata", "Pacific/Chatham",
         "+05:45", "-03:30", "Africa/Monrovia")


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamp_columns_are_written_as_python_writes_each_value(zone: str | None,
                                                                   unit: str) -> None:
    """Arrow writes a timestamp column's texts at once; they are the texts of
    datetime.isoformat() value by value: fractions only when not zero, offsets +HH:MM (daylight
    saving time, half and three-quarter hours), before 1900, local mean time (Monrovia's
    -00:44:30 until 1972) and after 2037 (where Arrow's rules stop) included."""
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    start = int(datetime(1890, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp())
    step = (end - start) // 997
    seconds = [start + n * step + n % 3 for n in range(997)]
    values = [None if n % 50 == 0 else s * per_second + (n % 2) * (per_second - 1)
              for n, s in enumerate(seconds)]
    column = pa.array(values, pa.int64()).cast(pa.timestamp(unit, tz=zone))
    recent = column.slice(700, 100)  # 1980 to 2011: the whole column at once, sliced

    for part in (column, recent, column.slice(0, 400)):
        micro = [None if value is None else value * 10**6 // per_second  # cut to the past
                 for value in part.cast(pa.int64()).to_pylist()]
        expected = [None if value is None else value.isoformat() for value in
                    pa.array(micro, pa.int64()).cast(pa.timestamp("us", tz=zone)).to_pylist()]
        assert values_of(part) == expected


def test_date_columns_are_iso_texts() -> None:
    days = pa.array([date(2024, 2, 29), None, date(1000, 1, 1), date(9999, 12, 31)])
    assert values_of(days) == ["2024-02-29", None, "1000-01-01", "9999-12-31"]
    assert values_of(days.cast(pa.date64())) == values_of(days)
    assert values_of(pa.array([date(999, 12, 31)])) == ["0999-12-31"]
    assert values_of(pa.array([None], pa.date32())) == [None]


@pytest.mark.parametrize(("precision", "scale"), [(12, 2), (10, 0), (18, 6), (20, 2), (38, 10)])
def test_decimal_columns_become_what_the_database_app_makes_of_each_value(
        precision: int, scale: int) -> None:
    """An int when integral (exact), else the float nearest the decimal, as
    convert_value(Decimal) gives; 38 digits (past an int64) are converted value by value."""
    digits = [1, 3, precision - scale, precision]
    values = [None, Decimal(0).scaleb(-scale), Decimal(-1).scaleb(-scale)]
    for n, count in enumerate(digits * 6):
        number = (10 ** count - 1) // (n + 1) * (-1) ** n
        if n % 3 == 0:
            number -= number % 10 ** scale  # integral
        values.append(Decimal(number).scaleb(-scale))
    column = pa.array(values, pa.decimal128(precision, scale))

    for part in (column, column.slice(2, 9)):
        got = values_of(part)
        expected = [convert_value(value) for value in part.to_pylist()]
        assert got == expected
        assert [type(value) for value in got] == [type(value) for value in expected]


def test_a_decimal_with_no_whole_digits_is_a_number(tmp_path: Path) -> None:
    """NUMERIC(5,5): every value is under 1 (Arrow once failed the file finding their floors)."""
    table = pa.table({"ratio": pa.array([Decimal("0.12345"), Decimal("-0.5"), Decimal(0), None],
                                        pa.decimal128(5, 5))})
    records = read([write(tmp_path / "t.parquet", table)])
    assert [r.data for r in records] == [{"ratio": 0.12345}, {"ratio": -0.5}, {"ratio": 0},
                                         {"ratio": None}]


@pytest.mark.parametrize("digits", [1, 9, 38])
def test_decimals_with_no_whole_digits_are_what_the_database_app_makes(digits: int) -> None:
    nines = "0." + "9" * digits
    column = pa.array([Decimal(nines), Decimal("-" + nines), Decimal(0),
                       Decimal(1).scaleb(-digits), None],
                      pa.decimal128(digits, digits))
    assert values_of(column) == [convert_value(value) for value in column.to_pylist()]


@pytest.mark.parametrize(("precision", "scale", "text"), [
    (2, 1, "-9.5"), (3, 2, "-9.99"), (5, 2, "-999.99"), (10, 1, "-999999999.5"),
    (38, 2, "-" + "9" * 18 + ".99")])
def test_a_negative_decimal_whose_floor_needs_another_digit_is_a_number(
        precision: int, scale: int, text: str) -> None:
    """The floor of -9.5 in decimal(2, 1) is -10: Arrow failed the file finding it (found by
    a reviewer)."""
    for values in ([Decimal(text)], [Decimal(text), Decimal(text).copy_negate(), None]):
        column = pa.array(values, pa.decimal128(precision, scale))  # (Arrow failed the first)
        assert values_of(column) == [convert_value(value) for value in values]


def test_a_time_past_the_year_9999_on_its_zones_clocks_is_written_in_utc(
        tmp_path: Path) -> None:
    """A '9999-12-31 23:59:59 UTC' end-of-validity sentinel is 10000-01-01 in Paris, and the
    year 1 at 03:00 UTC is still the year 0 in New York: no date holds them there."""
    sentinel = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    table = pa.table({
        "valid_to": pa.array([datetime(2030, 1, 1, tzinfo=UTC), sentinel],
                             pa.timestamp("us", tz="Europe/Paris")),
        "born": pa.array([datetime(1, 1, 1, 3, tzinfo=UTC), None],
                         pa.timestamp("ms", tz="America/New_York"))})
    records = read([write(tmp_path / "t.parquet", table)])
    assert [r.data for r in records] == [
        {"valid_to": "2030-01-01T01:00:00+01:00", "born": "0001-01-01T03:00:00+00:00"},
        {"valid_to": "9999-12-31T23:59:59+00:00", "born": None}]


def test_a_date_no_json_text_can_hold_makes_its_record_an_error(tmp_path: Path) -> None:
    """A naive timestamp in the year 20032 (and such a time inside a list): that record is an
    error naming the field; the file's other records are read."""
    far = 570_000_000_000_000  # ms: 20032-07-31
    table = pa.table({"id": [1, 2, 3],
                      "seen": pa.array([0, far, None], pa.timestamp("ms")),
                      "visits": pa.array([[0], [0], [far]], pa.list_(pa.timestamp("ms")))})
    first, second, third = read([write(tmp_path / "t.parquet", table)])
    assert first.data == {"id": 1, "seen": "1970-01-01T00:00:00",
                          "visits": ["1970-01-01T00:00:00"]}
    assert second.data is None and second.field == "seen" and second.ref == "row 2"
    assert second.error is not None and second.error.startswith(
        "row 2: seen: a date in it (20032-") and "outside the years 1 to 9999" in second.error
    assert second.raw is not None and '"id":2' in second.raw
    assert third.data is None and third.field == "visits"


def test_nanoseconds_are_cut_to_microseconds_toward_the_past_nested_ones_too(
        tmp_path: Path) -> None:
    at = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789
    table = pa.table({
        "at": pa.array([at, -1], pa.timestamp("ns")),
        "clock": pa.array([1_000_000_001, 999], pa.time64("ns")),
        "took": pa.array([1_500, -1_500], pa.duration("ns")),
        "visits": pa.array([[at], [-1, None]], pa.list_(pa.timestamp("ns"))),
        "last": pa.array([{"t": at}, None], pa.struct([("t", pa.timestamp("ns", tz="UTC"))])),
        "spent": pa.array([[("a", 2_500)], []], pa.map_(pa.string(), pa.duration("ns")))})
    first, second = (r.data for r in read([write(tmp_path / "t.parquet", table)]))
    assert first == {"at": "2023-11-14T22:13:20.123456", "clock": "00:00:01",
                     "took": 0.000001, "visits": ["2023-11-14T22:13:20.123456"],
                     "last": {"t": "2023-11-14T22:13:20.123456+00:00"},
                     "spent": {"a": 0.000002}}
    assert second == {"at": "1969-12-31T23:59:59.999999", "clock": "00:00:00",
                      "took": -0.000002, "visits": ["1969-12-31T23:59:59.999999", None],
                      "last": None, "spent": {}}


def test_two_columns_of_one_name_fail_the_export_naming_it(tmp_path: Path) -> None:
    dup = write(tmp_path / "dup.parquet", pa.Table.from_arrays(
        [pa.array([1, 2]), pa.array(["a", "b"]), pa.array([3, 4])], names=["id", "id", "n"]))
    with pytest.raises(ExportError, match=r"dup\.parquet has two columns named id: rename one "
                                          "in the file, or list the other columns") as caught:
        read([dup])
    assert caught.value.cause == "config"
    assert [r.data for r in read([dup], columns=["n"])] == [{"n": 3}, {"n": 4}]

    fields = pa.StructArray.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"])
    nested = write(tmp_path / "nested.parquet",
                   pa.table({"id": [1], "s": fields, "l": pa.array([[fields[0]]])}))
    with pytest.raises(ExportError, match=r"nested\.parquet has two fields named s\.x"):
        read([nested])
    with pytest.raises(ExportError, match=r"nested\.parquet has two fields named l\.x"):
        read([nested], columns=["l"])
    assert [r.data for r in read([nested], columns=["id"])] == [{"id": 1}]


def test_a_page_whose_checksum_is_wrong_fails_the_export_when_reached(tmp_path: Path) -> None:
    """A file written with page checksums (Spark, pyarrow's write_page_checksum) and one bit
    flipped in its second row group: a wrong value is never sent."""
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": pa.array(range(3000), pa.int64())}), path,
                   row_group_size=1000, compression="none", use_dictionary=False,
                   write_page_checksum=True)
    column = pq.ParquetFile(path).metadata.row_group(1).column(0)
    data = bytearray(path.read_bytes())
    data[column.data_page_offset + column.total_compressed_size - 80] ^= 0x40
    path.write_bytes(bytes(data))
    records = ParquetExport([path]).records()
    assert [next(records).data for _ in range(1000)] == [{"id": n} for n in range(1000)]
    with pytest.raises(ExportError, match=r"t\.parquet cannot be read after row 1000 \(.*CRC"):
        next(records)

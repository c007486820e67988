"""Parquet files: one file, or a folder of parts, read a row group at a time with pyarrow.

    ParquetExport([Path("/srv/data/orders.parquet")], columns=["id", "email"])

A folder's parts are its ``*.parquet`` files sorted by name (hidden files and Spark's
``_SUCCESS`` / ``_metadata`` left out); positions are row indexes across the parts, so part 2
goes on where part 1 ended. A record's ref is "row 12" in one file, "part-0001.parquet row 12"
in a folder (rows counted from 1 within each part).

Memory stays flat: ``iter_batches`` decodes one batch of a row group at a time, and each batch
becomes records column by column (``parquet_values``). A resume at position N reads no row
group that ends before N, and a lane no row group without one of its blocks: the row counts
come from the files' footers.

A file that is not Parquet, or whose footer is cut, or that has two columns of one name,
stops the export before its first record with an ExportError naming the file; a damaged row
group (or a page whose checksum is wrong) stops it when reached, naming the file and the row.
Records already sent keep their messageIds (position or key field), so the next run, after the
file is exported again, sends nothing Segment has not deduplicated. A value with no JSON value
(a date past the year 9999) makes only its record an error, naming the field.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from segbridge.apps.files.csv_export import From
from segbridge.apps.files.parquet_values import column_values
from segbridge.apps.files.reading import clip
from segbridge.exports.contracts import SourceRecord, Spans
from segbridge.exports.errors import ExportError
from segbridge.exports.limits import RecordLimits, excerpt

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

BATCH_ROWS = 8192
PART_SUFFIX = ".parquet"
SAMPLE_ROWS = 1024  # the rows whose decoded size estimates a file's (``read_bytes``)


def parquet_parts(path: Path) -> list[Path]:
    """The file itself, or the Parquet parts of a folder, sorted by name."""
    if not path.is_dir():
        return [path]
    parts = sorted(entry for entry in path.iterdir() if entry.name.endswith(PART_SUFFIX)
                   and not entry.name.startswith((".", "_")))
    if not parts:
        raise ExportError(f"The folder {path} holds no .parquet files; give a Parquet file "
                          "or a folder of parts.", cause="file_not_found")
    return parts


def columns_read(path: Path, reads: Collection[str]) -> list[str] | None:
    """The columns of the file (or of any of a folder's parts) that the flow reads, in the
    order the parts give them: a warehouse table's other columns are then never decoded nor
    turned into values (40 columns of which a mapping reads 7: a quarter of the reading
    time). ``reads`` holds the record's top-level fields the mapping, filters, lookups and
    key field name. None (read every column) when the flow reads none of them, or a part
    cannot be read (the run's export says why). A folder's parts may differ (a column added
    later): give these to ParquetExport as ``reads``, each part reads those it has."""
    import pyarrow as pa

    wanted: dict[str, None] = {}
    try:
        for part in parquet_parts(path):
            with _opened(part) as handle:
                wanted.update(dict.fromkeys(name for name in handle.schema_arrow.names
                                            if name in reads))
    except (ExportError, pa.ArrowException, OSError):
        return None
    return list(wanted) or None


def read_bytes(path: Path, columns: Sequence[str] | None = None) -> int | None:
    """About how many bytes reading the file's rows costs: their decoded size, as the first
    rows (up to ``SAMPLE_ROWS``) take it in memory, times the row count in the footer.

    What decides lanes is what reading a file costs, which for a text file is its size on
    disk; a Parquet file is compressed and encoded (dictionaries, run lengths), so its size
    says little: one million order rows take 10.8 MB on disk and 20.4 MB uncompressed (the
    footer's own count, still encoded) but 81.6 MB decoded, and 60.2 MB as CSV. None when
    the file cannot be read: the run's export says why."""
    import pyarrow as pa

    try:
        with _opened(path) as handle:
            rows: int = handle.metadata.num_rows
            batches = handle.iter_batches(batch_size=SAMPLE_ROWS, row_groups=[0],
                                          columns=list(columns) if columns else None,
                                          use_threads=False)
            sample = next(batches, None) if rows else None
    except (ExportError, pa.ArrowException, OSError, ValueError, KeyError):
        return None
    if sample is None or not sample.num_rows:
        return 0
    return rows * int(sample.nbytes) // int(sample.num_rows)


@dataclass(frozen=True)
class Part:
    """One opened part: its file, its first position, its row groups' row counts, the columns
    read (None: every one)."""

    path: Path
    first: int
    group_rows: tuple[int, ...]
    columns: list[str] | None = None

    @property
    def rows(self) -> int:
        return sum(self.group_rows)


class ParquetExport:
    """The rows of Parquet files as records of column name -> JSON-friendly value.

    ``columns`` are the flow's ``export.columns``: every part must have each. ``reads`` are
    the columns the flow reads (``columns_read``): each part reads those it has, and a record
    of a part without one lacks that field, as it would reading every column."""

    def __init__(self, parts: Sequence[Path], *, columns: Sequence[str] | None = None,
                 reads: Collection[str] | None = None, limits: RecordLimits | None = None,
                 batch_rows: int = BATCH_ROWS, folder: bool = False) -> None:
        if not parts:
            raise ExportError("Give a Parquet file or a folder of parts.", cause="config")
        self.paths = [Path(part) for part in parts]
        self.columns = list(columns) if columns else None
        self.reads = frozenset(reads) if reads and not columns else None
        self.limits = limits or RecordLimits()
        self.batch_rows = max(1, batch_rows)
        self.folder = folder or len(self.paths) > 1
        self._read = 0
        self._total: int | None = None

    def __repr__(self) -> str:
        return f"ParquetExport({str(self.paths[0])!r}, parts={len(self.paths)})"

    def read_share(self) -> float | None:
        if self._total is None:
            return None
        return min(self._read / self._total, 1.0) if self._total else 1.0

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        """The records from ``start_position`` on."""
        return self.records_in(From(max(0, start_position)))

    def records_in(self, spans: Spans) -> Iterator[SourceRecord]:
        """The records in ``spans`` (a resume: everything from a position; a lane: its
        blocks). Row groups with no wanted row are not read; in the others only the wanted
        rows are converted. Records are built one at a time in this loop (records made a
        batch at a time would live together and make the garbage collector scan them again
        and again)."""
        parts = self._parts()
        self._total = sum(part.rows for part in parts)
        make, pair, record_type = dict, zip, SourceRecord
        for part, batch, first in self._wanted(parts, spans):
            names = batch.schema.names
            columns, problems = batch_values(batch)
            label = f"{part.path.name} row " if self.folder else "row "
            before = part.first - 1  # rows are counted from 1 within each part
            rows = enumerate(pair(*columns), start=first)
            if problems:
                for position, values in rows:
                    ref = f"{label}{position - before}"
                    data = make(pair(names, values))
                    problem = problems.get(position - first)
                    yield self._checked(position, ref, data) if problem is None \
                        else _unreadable(position, ref, data, *problem)
            elif fits_whole(batch, self.limits.max_bytes):
                for position, values in rows:
                    yield record_type(position, f"{label}{position - before}",
                                      make(pair(names, values)))
            else:
                for position, values in rows:
                    yield self._checked(position, f"{label}{position - before}",
                                        make(pair(names, values)))

    def _wanted(self, parts: list[Part],
                spans: Spans) -> Iterator[tuple[Part, pa.RecordBatch, int]]:
        """The wanted rows of each batch, as slices with their first position."""
        for part, batch, first in self._batches(parts, spans):
            end = first + batch.num_rows
            position = first
            while position < end:
                low, high = spans.around(position)
                if low >= end:
                    break
                low = max(low, position)
                high = min(high, end)
                yield part, batch.slice(low - first, high - low), low
                position = high

    def _batches(self, parts: list[Part],
                 spans: Spans) -> Iterator[tuple[Part, pa.RecordBatch, int]]:
        """Each batch of the row groups that hold a wanted row, with its part and first
        position; the other row groups are skipped by their row counts, never read."""
        for part in parts:
            groups = _groups_in(part, spans)
            if not groups:
                continue
            with _opened(part.path) as handle:
                for group, position in groups:
                    batches = handle.iter_batches(batch_size=self.batch_rows,
                                                  row_groups=[group], columns=part.columns,
                                                  use_threads=False)
                    for batch in _guarded(batches, part.path, position - part.first):
                        self._read = position + batch.num_rows
                        yield part, batch, position
                        position += batch.num_rows
        self._read = self._total or 0

    def _parts(self) -> list[Part]:
        """Every part's footer, read before any record (a broken footer sends nothing)."""
        parts, first = [], 0
        for path in self.paths:
            with _opened(path) as handle:
                meta = handle.metadata
                groups = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
                columns = self._columns_of(path, handle.schema_arrow)
            parts.append(Part(path, first, groups, columns))
            first += sum(groups)
        return parts

    def _columns_of(self, path: Path, schema: pa.Schema) -> list[str] | None:
        """The columns of a part to read (None: every one), checked: each of export.columns
        there, not too many, no name given to two columns (or two fields of a struct)."""
        names = schema.names
        columns = self.columns
        if columns:
            missing = [name for name in columns if name not in names]
            if missing:
                raise ExportError(f"{path.name} has no column {', '.join(missing)}; its columns "
                                  f"are {', '.join(names)}. Fix export.columns.",
                                  cause="config")
        elif self.reads is not None:
            columns = [name for name in names if name in self.reads]
        read = [field for field in schema if columns is None or field.name in columns]
        repeated = _repeated_name(read)
        if repeated:
            raise ExportError(f"{path.name} has two {repeated}: rename one in the file, or "
                              "list the other columns to read in export.columns.",
                              cause="config")
        problem = self.limits.too_many_columns(f"{path.name} has", len(read),
                                               "List fewer in export.columns.")
        if problem:
            raise ExportError(problem, cause="config")
        return columns

    def _checked(self, position: int, ref: str, data: dict[str, Any]) -> SourceRecord:
        problem = self._fits(data)
        if problem is None:
            return SourceRecord(position, ref, data)
        return SourceRecord(position, ref, None, error=f"{ref}: {problem}",
                            raw=clip(excerpt(data)))

    def _fits(self, data: dict[str, Any]) -> str | None:
        """Why a record breaks the caps (size, depth, fields), or None."""
        limits = self.limits
        try:
            text = orjson.dumps(data)
        except (orjson.JSONEncodeError, RecursionError):
            return limits.shape_problem(data) or limits.too_deep(limits.max_depth,
                                                                 at_least=True)
        if not limits.line_fits(text):
            problem = limits.shape_problem(data)
            if problem is not None:
                return problem
        return limits.too_large(len(text)) if len(text) > limits.max_bytes else None


def batch_values(batch: pa.RecordBatch) -> tuple[list[list[Any]], dict[int, tuple[str, str]]]:
    """Each column's values (``column_values``), and the rows with a value that has none,
    each with its field and why (the first such field of the row)."""
    columns = []
    problems: dict[int, tuple[str, str]] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        values, unreadable = column_values(column)
        columns.append(values)
        for row, why in unreadable.items():
            problems.setdefault(row, (name, why))
    return columns, problems


def _unreadable(position: int, ref: str, data: dict[str, Any], field: str,
                why: str) -> SourceRecord:
    """The record of a row with a value that has no JSON value: an error naming the field."""
    return SourceRecord(position, ref, None, error=f"{ref}: {field}: {why}", field=field,
                        raw=clip(excerpt(data)))


def _repeated_name(fields: Sequence[pa.Field], within: str = "") -> str | None:
    """"columns named id" when two of ``fields`` are named id, "fields named address.city"
    when two fields of a struct are (in a list or map too); else None (Arrow would keep the
    last of the two columns, and cannot make a struct with two into a record)."""
    seen: set[str] = set()
    for field in fields:
        name = f"{within}{field.name}"
        if field.name in seen:
            return f"fields named {name}" if within else f"columns named {name}"
        seen.add(field.name)
        repeated = _repeated_name(_struct_fields(field.type), f"{name}.")
        if repeated:
            return repeated
    return None


def _struct_fields(kind: pa.DataType) -> list[pa.Field]:
    """The fields of a struct type, or of the structs in a list, map or dictionary type."""
    import pyarrow as pa

    types = pa.types
    if types.is_struct(kind):
        return [kind.field(i) for i in range(kind.num_fields)]
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        return _struct_fields(kind.value_type)
    if types.is_map(kind):
        return _struct_fields(kind.item_type)
    if types.is_dictionary(kind):
        return _struct_fields(kind.value_type)
    return []


def fits_whole(batch: pa.RecordBatch, max_bytes: int) -> bool:
    """True when no record of a flat batch can pass the size cap, by an upper bound on its
    JSON (the longest value of each column, every character escaped): then no record needs
    its own check. A nested column (lists, structs, maps: depth and field counts vary) or a
    bound over the cap means each record is checked."""
    import pyarrow as pa
    import pyarrow.compute as pc

    types = pa.types
    bound = 2
    for field, column in zip(batch.schema, batch.columns, strict=True):
        kind = field.type
        bound += 6 * len(field.name.encode()) + 4
        if types.is_nested(kind) or types.is_dictionary(kind):
            return False
        if types.is_string(kind) or types.is_large_string(kind) or types.is_binary(kind) \
                or types.is_large_binary(kind) or types.is_fixed_size_binary(kind):
            longest = pc.max(pc.binary_length(column)).as_py() or 0
            bound += 6 * longest + 4
        else:
            bound += 64  # a number, a date or time, a boolean, null
    return bound <= max_bytes


def _groups_in(part: Part, spans: Spans) -> list[tuple[int, int]]:
    """The part's row groups that hold a wanted row, each with its first position."""
    groups, position = [], part.first
    for index, rows in enumerate(part.group_rows):
        low, _ = spans.around(position)
        if low < position + rows:
            groups.append((index, position))
        position += rows
    return groups


class _opened:
    """A ParquetFile opened for reading; an ExportError naming the file when it cannot be."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> pq.ParquetFile:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self.handle = pq.ParquetFile(self.path, memory_map=False, pre_buffer=False,
                                         page_checksum_verification=True)
        except FileNotFoundError:
            raise ExportError(f"The file {self.path} does not exist; check the path or upload "
                              "it again.", cause="file_not_found") from None
        except PermissionError:
            raise ExportError(f"segbridge may not read {self.path}; give its user read "
                              "access.", cause="file_permission") from None
        except (pa.ArrowException, OSError) as exc:
            raise ExportError(f"{self.path.name} is not a readable Parquet file ({_said(exc)}); "
                              "check that the file is complete, or export it again.",
                              cause="file_error") from None
        return self.handle

    def __exit__(self, *_: object) -> None:
        self.handle.close()


def _guarded(batches: Iterator[pa.RecordBatch], path: Path,
             position: int) -> Iterator[pa.RecordBatch]:
    """The batches; a decoding failure becomes an ExportError naming the file and row."""
    import pyarrow as pa

    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise ExportError(f"{path.name} cannot be read after row {position} "
                              f"({_said(exc)}); the file is damaged: export it again, then run "
                              "the flow again (rows already sent keep their messageIds).",
                              cause="file_error") from None
        position += batch.num_rows
        yield batch


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]

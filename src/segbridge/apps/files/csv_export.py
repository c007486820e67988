"""CSV files: binary lines, each decoded on its own, parsed by the csv module.

The hot loop is csv.reader over ``map(bytes.decode, lines)``: no Python code per line. Errors
take a slow path that reads the failed record's lines again from the last checkpoint (a line
number and a byte offset taken every 256 records and after each error), to name the line,
keep the raw text and, when a quote was never closed, start again on the next line.

A record's ``ref`` is the physical line it starts on ("line 7"), also when a quoted field
holds newlines. A record with fewer or more fields than the header is an error (its fields
are not guessed). Blank lines are not records.

The caps (``limits``): a line longer than the size cap is an error record (skipped unread), and
so is a record over several lines (quoted line ends) larger than the cap; a header with more
columns than the field cap fails the export, a row with more fields is an error record.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import methodcaller
from pathlib import Path
from typing import Any, BinaryIO, cast

from segbridge.apps.files.boundaries import END, Block, Boundaries
from segbridge.apps.files.csv_recovery import Failure, Recovery
from segbridge.apps.files.reading import (
    ReadShare,
    clip,
    dedupe,
    line_codec,
    open_binary,
    physical_lines,
    skip_bom,
)
from segbridge.exports.contracts import NotRead, SourceRecord, Spans
from segbridge.exports.errors import ExportError
from segbridge.exports.limits import RecordLimits

CHECKPOINT_EVERY = 256  # records; a power of two


@dataclass(frozen=True)
class CsvOptions:
    """How to read a CSV file (the flow's ``export.options``)."""

    header: bool | tuple[str, ...] = True
    delimiter: str = ","
    quote: str = '"'
    encoding: str = "utf-8"
    skip_blank_lines: bool = True

    def check(self) -> None:
        for name, char in (("delimiter", self.delimiter), ("quote", self.quote)):
            if not isinstance(char, str) or len(char) != 1 or char in "\r\n":
                raise ExportError(f"The {name} must be one character (not a line end).",
                                  cause="config")
        if self.delimiter == self.quote:
            raise ExportError("The delimiter and the quote must differ.", cause="config")
        if self.header is False:
            raise ExportError("header: false needs the column names; give them as a list.",
                              cause="config")
        if not isinstance(self.header, bool) and not self.header:
            raise ExportError("Give at least one column name, or header: true.", cause="config")


class CsvExport(ReadShare):
    """A CSV file on the server, as records of column name -> string value.

    ``boundaries`` (a lane's, ``boundaries.py``): where each block's first record starts;
    ``records_in`` then reads only the wanted blocks, each from its own offset."""

    boundaries: Boundaries | None = None

    def __init__(self, path: str | Path, *, header: bool | Sequence[str] = True,
                 delimiter: str = ",", quote: str = '"', encoding: str = "utf-8",
                 skip_blank_lines: bool = True, limits: RecordLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = limits or RecordLimits()
        self.max_line_bytes = self.limits.max_bytes
        if isinstance(header, str):
            raise ExportError("header is true, or a list of column names.", cause="config")
        names = header if isinstance(header, bool) else tuple(header)
        self.options = CsvOptions(names, delimiter, quote, encoding, skip_blank_lines)
        self.options.check()
        self.codec = line_codec(encoding)

    def __repr__(self) -> str:
        return f"CsvExport({str(self.path)!r})"

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        # (NotRead comes only with boundaries naming blocks to skip: a diff sync's lanes)
        return cast(Iterator[SourceRecord], _CsvPass(self).records(From(start_position)))

    def records_in(self, spans: Spans) -> Iterator[SourceRecord | NotRead]:
        return _CsvPass(self).records(spans)


class From:
    """Every position from ``start`` on."""

    def __init__(self, start: int) -> None:
        self.start = start

    def around(self, position: int) -> tuple[int, int]:
        return self.start, sys.maxsize


class _CsvPass:
    """One pass over the file: the reader, the line count and the slow path's state."""

    def __init__(self, export: CsvExport) -> None:
        self.export = export
        self.path = export.path
        self.options = export.options
        self.codec = export.codec
        self.limit = export.max_line_bytes
        self.limits = export.limits
        self.base = 0  # physical lines consumed before self.reader started
        self.position = 0
        self.first = 1  # the line the record being read starts on
        self.handle: BinaryIO
        self.recovery: Recovery
        self.reader: Any

    def new_reader(self) -> Any:
        lines = physical_lines(self.handle, self.limit)
        decoded = (map(bytes.decode, lines) if self.codec == "utf-8"
                   else map(methodcaller("decode", self.codec), lines))
        return csv.reader(decoded, delimiter=self.options.delimiter,
                          quotechar=self.options.quote, strict=True)

    def restart(self, lines_before: int) -> None:
        self.reader = self.new_reader()
        self.base = lines_before
        self.recovery.checkpoint(lines_before)

    def records(self, spans: Spans) -> Iterator[SourceRecord | NotRead]:
        with self.export.opened(open_binary(self.path)) as handle:
            skip_bom(handle)
            self.handle = handle
            self.recovery = Recovery(handle, self.codec, self.limit)
            self.reader = self.new_reader()
            header = self.header()
            if header is None:
                return
            boundaries = self.export.boundaries
            if boundaries is not None and boundaries.fits(handle):
                yield from self.blocks(header, spans, boundaries)
            else:
                self.recovery.checkpoint(self.reader.line_num)
                yield from self.rows(header, spans)

    def blocks(self, header: list[str], spans: Spans,
               boundaries: Boundaries) -> Iterator[SourceRecord | NotRead]:
        """Only the wanted blocks: each read from its first record's offset, with that
        record's position and the physical lines before it (as one pass would count)."""
        low, high = spans.around(0)
        while (mark := boundaries.mark(low)) is not None:
            if low in boundaries.skip:  # (the open file is the one scanned: see records)
                yield NotRead(low, boundaries.block_end(low))
                low, high = spans.around(high)
                continue
            offset, lines_before = mark
            self.handle.seek(offset)
            self.position = low
            self.restart(lines_before)
            for record in self.rows(header, Block(low, high)):
                if record.position >= high:
                    break
                yield record
            low, high = spans.around(high)

    def rows(self, header: list[str], spans: Spans) -> Iterator[SourceRecord]:
        """The hot loop, restarted with a new reader after a record the reader gave up on.
        Records before ``low`` are parsed (positions, lines) but not built; at ``high`` the
        spans say which range comes next. (Locals for everything used per row: this loop is
        the CSV throughput.)"""
        low, high = spans.around(0)
        width, blank_ok, checkpoint = len(header), self.options.skip_blank_lines, \
            self.recovery.checkpoint
        expect = width if width > 1 else -1  # one column: every row takes the careful path
        mask, record_type, make_dict, pair = CHECKPOINT_EVERY - 1, SourceRecord, dict, zip
        oversized = self.oversized
        while True:
            reader, position = self.reader, self.position
            start = self.base + 1
            first = start + reader.line_num  # the line the next record starts on
            try:
                for row in reader:
                    if len(row) != expect:
                        if not row or (len(row) == 1 and not row[0].strip()):
                            if blank_ok:
                                first = start + reader.line_num
                                continue
                            row = row or [""]  # a blank line is one empty field
                        if len(row) != width:
                            record = self.mismatch(row, width, position, first)
                            if position >= low:
                                yield record
                            position += 1
                            if self.reader is not reader:
                                break
                            first = start + reader.line_num
                            continue
                    if position >= low:
                        if position >= high:
                            low, high = spans.around(position)
                            if low == END:
                                return
                        if position >= low:
                            if start + reader.line_num - first > 1 and oversized(row):
                                yield self.too_large(row, position, first)
                            else:
                                yield record_type(position, f"line {first}",
                                                  make_dict(pair(header, row)))  # same length
                    position += 1
                    first = start + reader.line_num
                    if not position & mask:
                        checkpoint(first - 1)
                else:
                    return
            except (UnicodeDecodeError, csv.Error) as exc:
                self.position, self.first = position, first
                record = self.fail(exc)
                if record.position >= low:
                    yield record

    def mismatch(self, row: list[str], width: int, position: int, first: int) -> SourceRecord:
        """A row with the wrong number of fields (replaces the reader after an overlong line)."""
        count = len(row)
        reason = f"{count} {'field' if count == 1 else 'fields'}, the header has {width}"
        if count > self.limits.max_fields:
            reason = f"{self.limits.too_many_fields(count)}; the header has {width}"
        failure = self.recovery.explain(first, Failure.FIELDS, reason)
        self.position = position + 1
        if failure.restart_after is not None:
            self.restart(failure.restart_after)
        else:
            self.recovery.checkpoint(self.base + self.reader.line_num)
        return failure.record(position)

    def oversized(self, row: list[str]) -> bool:
        """A record over several lines past the size cap (characters, and the delimiters)."""
        return sum(map(len, row)) + len(row) > self.limits.max_bytes

    def too_large(self, row: list[str], position: int, first: int) -> SourceRecord:
        text = self.options.delimiter.join(row)
        size = len(text.encode(self.codec, "replace"))
        return SourceRecord(position, f"line {first}", None,
                            error=f"line {first}: {self.limits.too_large(size)}",
                            raw=clip(text, size))

    def fail(self, exc: UnicodeDecodeError | csv.Error) -> SourceRecord:
        """A record the reader gave up on: reading goes on with a new reader."""
        kind = Failure.DECODE if isinstance(exc, UnicodeDecodeError) else Failure.CSV
        failure = self.recovery.explain(self.first, kind, str(exc))
        assert failure.restart_after is not None
        self.restart(failure.restart_after)
        record = failure.record(self.position)
        self.position += 1
        return record

    def header(self) -> list[str] | None:
        """The column names: given, or read from the first non-blank line (None: empty file)."""
        if not isinstance(self.options.header, bool):
            return self.checked(dedupe(list(self.options.header)))
        try:
            for row in self.reader:
                if row and (len(row) > 1 or row[0].strip()):
                    return self.checked(dedupe(row))
        except UnicodeDecodeError as exc:
            line = self.reader.line_num + 1
            raise ExportError(f"The header on line {line} is not valid {exc.encoding} at byte "
                              f"{exc.start + 1}; check the encoding option.",
                              cause="bad_header") from None
        except csv.Error as exc:
            raise ExportError(f"The header on line {self.reader.line_num} cannot be read: "
                              f"{exc}.", cause="bad_header") from None
        return None

    def checked(self, header: list[str]) -> list[str]:
        """The header, unless it has more columns than a record may have fields."""
        problem = self.limits.too_many_columns("The header has", len(header),
                                               "Export fewer columns.")
        if problem:
            raise ExportError(problem, cause="bad_header")
        return header

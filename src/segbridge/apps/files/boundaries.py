"""Where a CSV or NDJSON file's blocks of records start, so that each lane reads only its own.

A run in lanes cuts its input into blocks of ``every`` positions (``runs.lanes``). This module
finds, once, the byte offset and the physical lines before the first record of every block
(a *mark*), with scans at C speed over 1 MB pieces of the file (``bytes.count``/``find``/
``split``/``translate``): no per-record Python for an ordinary file. A lane then seeks to each
of its blocks and parses only those (``CsvExport.records_in``, ``NdjsonExport.records_in``),
and its positions and refs ("line N") are those of one pass over the whole file.

A mark is given only when it is proven to be where one pass would be. The scan gives up
(``Unprovable``; the run keeps lanes that read the whole file) when one pass's reader could see
the file differently from a byte split:

- CSV: a quote not at a field's start or end and not doubled (``ab"c``, which the csv module
  reads literally, or ``"a"b``, which it refuses), a lone carriage return, a record over the
  line or csv field size limit, a one-column file, an unterminated quote at the end, an
  encoding that is not UTF-8 or one byte per character, a delimiter or quote that is not ASCII,
  a header that cannot be read, an undecodable line that is part of a quoted record;
- NDJSON: a line over the size limit.

Blank lines (CSV: no field, or one whitespace field; NDJSON: whitespace) are not records: a
line that may be one (no delimiter, only whitespace, quotes or non-ASCII bytes) is checked
exactly, as the reader would read it. A line that is not valid in the encoding is one error
record, as in one pass, when it is a record on its own.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from segbridge.apps.files.reading import open_binary, skip_bom
from segbridge.exports.errors import ExportError

log = logging.getLogger(__name__)
PIECE_BYTES = 1 << 20  # the file is scanned in pieces of this size (cut at a record's end)
STEP_BYTES = 16 * 1024  # a mark is found by counting lines in steps of this many bytes
ASCII_SPACE = b" \t\r\x0b\x0c"  # bytes.isspace() (and the line end)
STR_SPACE = ASCII_SPACE + bytes(range(0x1c, 0x20))  # also stripped by str.strip()
END = sys.maxsize  # past a Block's end


class Unprovable(Exception):
    """A place where a byte split could differ from one pass's reader: no marks."""


@dataclass(frozen=True)
class Boundaries:
    """The marks of a run's blocks: block k starts at position ``start + k * every``, at byte
    ``marks[k][0]`` after ``marks[k][1]`` physical lines. A block past the last record has
    no mark. ``version``: the scanned file's identity (``file_version``: a lane whose file is
    no longer that one reads it whole, as before). ``end``: the position after the file's last
    record. ``skip``: the starts of the blocks a diff sync's lanes do not read (their bytes
    are those of blocks whose every record the snapshot holds: ``runs.diff_blocks``)."""

    start: int
    every: int
    marks: list[tuple[int, int]] = field(default_factory=list)
    version: tuple[int, ...] | None = None
    end: int | None = None
    skip: tuple[int, ...] = ()

    def mark(self, low: int) -> tuple[int, int] | None:
        """The offset and lines before the record at position ``low`` (a block's start)."""
        block, rest = divmod(low - self.start, self.every)
        if low < self.start or rest or block >= len(self.marks):
            return None
        return self.marks[block]

    def fits(self, handle: BinaryIO) -> bool:
        """Whether the open file is the one scanned (``file_version``)."""
        return self.version is None or self.version == file_version(handle)

    def still_the_file(self, path: str | Path) -> bool:
        """Whether the file at ``path`` is still the one scanned (False when unknown)."""
        try:
            found = os.stat(path)
        except OSError:  # (moved away or deleted once read: a common set-up)
            return False
        return self.version == _identity(found)

    def block_end(self, low: int) -> int:
        """The position after the block starting at ``low`` (the last block ends earlier)."""
        high = low + self.every
        return high if self.end is None else min(high, self.end)

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "every": self.every,
                "marks": [list(m) for m in self.marks],
                "version": list(self.version) if self.version else None,
                "end": self.end, "skip": list(self.skip)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Boundaries:
        version = data.get("version")
        end = data.get("end")
        return cls(int(data["start"]), int(data["every"]),
                   [(int(offset), int(lines)) for offset, lines in data["marks"]],
                   tuple(int(part) for part in version) if version else None,
                   int(end) if end is not None else None,
                   tuple(int(low) for low in data.get("skip", ())))


def block_digests(path: str | Path, found: Boundaries, salt: bytes) -> list[bytes] | None:
    """A 128-bit digest of each block's bytes (``found``'s blocks, in order), keyed by
    ``salt`` (what else decides the records: the flow's export options, mapping, key field,
    limits) and by the bytes before the first block (the BOM and the CSV header). None when
    the file is no longer the one scanned. Read at C speed: about 0.1 s for 60 MB."""
    if not found.marks or found.version is None:
        return None
    with open_binary(path) as handle:
        if file_version(handle) != found.version:
            return None
        head = hashlib.blake2b(handle.read(found.marks[0][0]), digest_size=16).digest()
        keyed = hashlib.blake2b(head, digest_size=16, key=hashlib.blake2b(salt).digest()[:64])
        digests = []
        size = found.version[0]  # (``_identity``: the size first)
        ends = [offset for offset, _lines in found.marks[1:]] + [size]
        for (offset, _lines), end in zip(found.marks, ends, strict=True):
            handle.seek(offset)
            hasher = keyed.copy()
            left = end - offset
            while left > 0:
                piece = handle.read(min(left, PIECE_BYTES))
                if not piece:
                    return None  # (shorter than scanned)
                hasher.update(piece)
                left -= len(piece)
            digests.append(hasher.digest())
        if file_version(handle) != found.version:
            return None
    return digests


def file_version(handle: BinaryIO) -> tuple[int, ...]:
    """What tells the scanned file from another at the same path, or from itself rewritten:
    its size and modification time, which a copy or an archive may set back to the old ones
    (``cp -p``, ``rsync -t --inplace``, ``touch -r``), so also its inode, device and change
    time, which nobody can set."""
    return _identity(os.fstat(handle.fileno()))


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    return stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev, stat.st_ctime_ns


class Block:
    """One block's positions [low, high) as ``Spans``; past it, ``(END, END)``: the reader
    stops."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def around(self, position: int) -> tuple[int, int]:
        if position < self.high:
            return self.low, self.high
        return END, END


def with_boundaries(export: object, data: dict[str, Any] | None) -> None:
    """Give a lane's CSV or NDJSON export its marks (from the lane's spec), if any."""
    if data is not None and hasattr(export, "boundaries"):
        export.boundaries = Boundaries.from_json(data)


# -- the scan --------------------------------------------------------------------------------


@dataclass
class _Cursor:
    """Where the scan is: the file offset of the piece, its first record's position and the
    physical lines before it."""

    offset: int
    position: int = 0
    lines: int = 0


@dataclass
class CsvFormat:
    """What a CSV file's byte split must check (its options, from the run's export)."""

    delimiter: bytes
    quote: bytes | None
    codec: str
    skip_blank: bool
    longest: int
    blankish: bytes = b""

    def __post_init__(self) -> None:
        space = STR_SPACE + bytes(range(0x80, 0x100))  # any of these may decode to a space
        delete = space if self.delimiter not in space else space + self.delimiter
        self.blankish = delete + b"\x00" + (self.quote or b"")  # (\x00: a masked line end)
        classes = bytearray(b"x" * 256)
        for byte in b"\n\r":
            classes[byte] = byte
        classes[self.delimiter[0]] = b","[0]
        if self.quote:
            classes[self.quote[0]] = b'"'[0]
        self.classes = bytes(classes)

    def check(self, body: bytes, masked: bytes) -> None:
        if b"\r" in body and body.count(b"\r") != body.count(b"\r\n"):
            raise Unprovable("a carriage return that does not end a line")
        if self.codec == "utf-8" and body.isascii():
            return
        self._decodes(body, masked)

    def _decodes(self, body: bytes, masked: bytes) -> None:
        """Each undecodable line must be a record of its own (one pass fails just it)."""
        view = memoryview(body)
        start = 0
        while start < len(body):
            try:
                str(view[start:], self.codec)
                return
            except UnicodeDecodeError as exc:
                bad = start + exc.start
            begin = masked.rfind(b"\n", 0, bad) + 1
            end = masked.find(b"\n", bad)
            if b"\n" in body[begin:end]:  # a record over several lines (quoted line ends)
                raise Unprovable("an undecodable line in a quoted record") from None
            start = end + 1

    def blank(self, record: bytes) -> bool:
        """Whether one pass skips this record as blank (read as the reader reads it)."""
        if not self.skip_blank:
            return False
        try:
            lines = [line.decode(self.codec) for line in record.splitlines(keepends=True)]
        except UnicodeDecodeError:
            return False
        try:
            row = next(csv.reader(lines, delimiter=self.delimiter.decode(),
                                  quotechar=(self.quote or b'"').decode(), strict=True), [])
        except csv.Error as exc:
            raise Unprovable(str(exc)) from None
        return not row or (len(row) == 1 and not row[0].strip())


@dataclass
class NdjsonFormat:
    """NDJSON: a line is a record unless it is whitespace (``bytes.isspace``)."""

    longest: int
    quote: bytes | None = None
    blankish: bytes = ASCII_SPACE

    def check(self, body: bytes, masked: bytes) -> None:
        return None

    def blank(self, record: bytes) -> bool:
        return True  # a line of ASCII whitespace only (the scan deleted nothing else)


def scan(handle: BinaryIO, form: CsvFormat | NdjsonFormat, cursor: _Cursor, start: int,
         every: int, stop: Callable[[], bool] | None = None) -> Boundaries:
    """The marks of blocks of ``every`` positions from ``start``, reading from the cursor."""
    marks: list[tuple[int, int]] = []
    target = start
    handle.seek(cursor.offset)
    carry = b""
    while True:
        if stop is not None and stop():
            raise Unprovable("stopped")
        data = handle.read(PIECE_BYTES)
        if data and not data.endswith(b"\n"):
            data += handle.readline(form.longest + 2)  # (most pieces then end a record)
        buffer = carry + data if carry else data
        if not data:
            if not buffer:
                break
            if form.quote is not None and buffer.endswith(b"\r"):
                raise Unprovable("the file ends with a carriage return")
            buffer += b"\n"  # the last line has no line end: read as if it had
        body, masked = _cut(buffer, form, at_end=not data)
        if not body:
            if len(buffer) > form.longest:
                raise Unprovable("a record over the size limit")
            carry = buffer
            continue
        carry = buffer[len(body):] if len(body) < len(buffer) else b""
        target = _piece(body, masked, form, cursor, target, every, marks)
    return Boundaries(start, every, marks, end=cursor.position)


def _piece(body: bytes, masked: bytes, form: CsvFormat | NdjsonFormat, cursor: _Cursor,
           target: int, every: int, marks: list[tuple[int, int]]) -> int:
    """Count the records of one piece (whole records) and mark the blocks starting in it."""
    _longest_line(masked, form.longest)
    form.check(body, masked)
    physical = body.count(b"\n")
    lines = physical if masked is body else masked.count(b"\n")
    blanks = list(_blank_lines(body, masked, form))
    records = lines - len(blanks)
    seek = _LineSeeker(masked)
    while target < cursor.position + records:
        index = target - cursor.position
        for blank in blanks:  # the index-th record's line: after the blank lines before it
            if blank <= index:
                index += 1
        offset = seek.start_of(index)
        before = index if masked is body else body.count(b"\n", 0, offset)
        marks.append((cursor.offset + offset, cursor.lines + before))
        target += every
    cursor.offset += len(body)
    cursor.position += records
    cursor.lines += physical
    return target


def _cut(buffer: bytes, form: CsvFormat | NdjsonFormat, *,
         at_end: bool) -> tuple[bytes, bytes]:
    """The buffer's whole records (ending with a line end outside quotes), and the same bytes
    with the line ends inside quotes masked (so every newline left ends a record)."""
    quote = form.quote
    if not isinstance(form, CsvFormat) or not quote or quote not in buffer:
        end = buffer.rfind(b"\n") + 1
        body = buffer if end == len(buffer) else buffer[:end]
        return body, body
    parts = buffer.split(quote)
    last = len(parts) - 1 if len(parts) % 2 else len(parts) - 2  # the last part outside
    if at_end and last != len(parts) - 1:
        raise Unprovable("unterminated quote: the file ends inside a quoted field")
    for index in range(last, -1, -2):
        newline = parts[index].rfind(b"\n")
        if newline >= 0:
            break
    else:
        return b"", b""
    parts = [*parts[:index], parts[index][:newline + 1]]
    outside = quote.join(parts[0::2])  # each quote here stands for a quoted section
    _check_quotes(outside.translate(form.classes))
    inside = parts[1::2]
    body = quote.join(parts)
    if outside.count(b"\n") == body.count(b"\n"):
        return body, body
    parts[1::2] = [part.replace(b"\n", b"\x00") for part in inside]
    return body, quote.join(parts)


def _check_quotes(kinds: bytes) -> None:
    """Every quoted section must open at a field's start and close at its end (RFC 4180);
    anything else (a stray quote the csv module reads literally, text after a closing quote)
    means the quotes' parity does not say where records end. ``kinds``: the text outside the
    quotes, each quoted section one quote, the delimiter a comma, other bytes x."""
    if b'x"' in kinds or b'"x' in kinds or b'\r"' in kinds:
        raise Unprovable("a quote that does not open or close a field")


def _longest_line(masked: bytes, longest: int) -> None:
    """Every record (a line of ``masked``) at most ``longest`` bytes, without a per-line loop:
    each window of ``longest + 1`` bytes from a record's start holds a line end."""
    start, size = 0, len(masked)
    while size - start > longest + 1:
        end = masked.rfind(b"\n", start, start + longest + 1)
        if end < 0:
            raise Unprovable("a record over the size limit")
        start = end + 1


def _blank_lines(body: bytes, masked: bytes, form: CsvFormat | NdjsonFormat) -> Iterator[int]:
    """The indices of the piece's lines that are not records: a line with nothing but
    ``blankish`` bytes is checked exactly; every other line is a record."""
    if isinstance(form, CsvFormat) and not form.skip_blank:
        return
    kept = masked.translate(None, form.blankish)  # a line that may be blank is empty here
    seek = _LineSeeker(masked)

    def blank(index: int) -> bool:
        if isinstance(form, NdjsonFormat):
            return True
        begin = seek.start_of(index)
        return form.blank(body[begin:masked.index(b"\n", begin) + 1])

    if kept.startswith(b"\n") and blank(0):
        yield 0
    index, counted = 0, 0  # the line ends in kept[:counted]
    found = kept.find(b"\n\n")
    while found >= 0:
        index += kept.count(b"\n", counted, found + 1)
        counted = found + 1
        if blank(index):
            yield index
        found = kept.find(b"\n\n", found + 1)


class _LineSeeker:
    """The start of line N of a text, for N growing: counts lines in steps of STEP_BYTES,
    then finds the last few one at a time."""

    def __init__(self, text: bytes) -> None:
        self.text = text
        self.line = 0
        self.offset = 0

    def start_of(self, index: int) -> int:
        text = self.text
        while index - self.line > 32:
            probe = text.find(b"\n", self.offset + STEP_BYTES)
            if probe < 0:
                break
            lines = text.count(b"\n", self.offset, probe + 1)
            if self.line + lines > index:
                break
            self.line += lines
            self.offset = probe + 1
        while self.line < index:
            self.offset = text.index(b"\n", self.offset) + 1
            self.line += 1
        return self.offset


# -- what a run's lanes get ------------------------------------------------------------------


def file_boundaries(kind: str, path: str | Path, options: dict[str, Any] | None,
                    limits: dict[str, int] | None, start: int, every: int,
                    stop: Callable[[], bool] | None = None) -> Boundaries | None:
    """The marks of a lane run's CSV or NDJSON file, or None: the lanes read the whole file
    (another type, a file where a byte split cannot be proven to be one pass's, a scan
    stopped by ``stop`` (the run was canceled), or a bug here, logged: never worse than
    whole-file lanes)."""
    from segbridge.apps.files.csv_export import CsvExport
    from segbridge.apps.files.export import file_export
    from segbridge.apps.files.ndjson import NdjsonExport
    from segbridge.exports.limits import RecordLimits

    if kind not in ("csv", "ndjson"):
        return None
    try:
        export = file_export(kind, path, options, RecordLimits(**(limits or {})))
        form: CsvFormat | NdjsonFormat
        if isinstance(export, CsvExport):
            form, cursor = _csv_start(export)
        elif isinstance(export, NdjsonExport):
            form, cursor = _ndjson_start(export)
        else:
            return None
        with open_binary(export.path) as handle:
            version = file_version(handle)  # (before: a file changed while scanned differs)
            found = scan(handle, form, cursor, start, every, stop)
            return replace(found, version=version)
    except (Unprovable, ExportError, OSError):
        return None
    except Exception:
        log.warning("finding where the blocks of %s start failed; each lane reads the whole "
                    "file", path, exc_info=True)
        return None


def one_byte_per_character(codec: str) -> bool:
    """Whether every byte of ``codec`` is one character on its own and ASCII bytes are ASCII
    (latin-1, ASCII, the code pages of a decoding table: cp1252, iso8859-15, koi8-r...). The
    scan counts lines and blanks on bytes; an encoding with escapes or state (iso2022-jp, hz,
    raw-unicode-escape: one character from several bytes) once passed a looser test, and a
    full-width space there was a blank line to one pass and a record to the scan."""
    if codec in ("iso8859-1", "ascii"):
        return True
    try:
        table = getattr(importlib.import_module(f"encodings.{codec.replace('-', '_')}"),
                        "decoding_table", None)
    except ImportError:
        return False
    return (isinstance(table, str) and len(table) == 256
            and table[:128] == bytes(range(128)).decode("ascii"))


def _csv_start(export: Any) -> tuple[CsvFormat, _Cursor]:
    """The CSV's format and where its first record starts (after the BOM and the header)."""
    from segbridge.apps.files.csv_export import _CsvPass
    from segbridge.apps.files.csv_recovery import Recovery

    options = export.options
    if not options.delimiter.isascii() or not options.quote.isascii():
        raise Unprovable("a delimiter or quote that is not ASCII")
    if export.codec != "utf-8" and not one_byte_per_character(export.codec):
        raise Unprovable("an encoding with more than one byte per character, or with state")
    reading = _CsvPass(export)
    with open_binary(export.path) as handle:
        skip_bom(handle)
        reading.handle = handle
        reading.recovery = Recovery(handle, export.codec, export.max_line_bytes)
        reading.reader = reading.new_reader()
        header = reading.header()
        cursor = _Cursor(handle.tell(), lines=reading.reader.line_num)
    if header is None or len(header) < 2:
        raise Unprovable("an empty file, or one column")
    delimiter, quote = options.delimiter.encode(), options.quote.encode()
    longest = min(export.max_line_bytes, csv.field_size_limit()) - 2
    return CsvFormat(delimiter, quote, export.codec, options.skip_blank_lines, longest), cursor


def _ndjson_start(export: Any) -> tuple[NdjsonFormat, _Cursor]:
    with open_binary(export.path) as handle:
        skip_bom(handle)
        return NdjsonFormat(export.max_line_bytes - 1), _Cursor(handle.tell())

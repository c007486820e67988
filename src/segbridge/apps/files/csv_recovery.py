"""The CSV slow path: read a failed record's lines again to name the bad line, keep the raw
text, and find where reading goes on.

A checkpoint is a record boundary: the physical lines before it and its byte offset. From the
last checkpoint the lines are read again (as the reader read them: pieces of at most
the line limit) up to where the reader stopped. Then:

- a line longer than the limit (16 MB) fails the record; reading goes on after that line
  (the reader saw its pieces as lines; a piece always fails, since no field may be longer
  than csv.field_size_limit(), far below the line limit);
- a line that is not valid in the encoding fails the record (named by that line);
- a csv error (an unterminated quote, text after a closing quote) fails the record;
  reading goes on at the line after the record's first line, so an unclosed quote costs
  one record, not the rest of the file;
- a wrong field count fails the record; reading goes on where it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import BinaryIO

from segbridge.apps.files.reading import (
    RAW_LIMIT,
    clip,
    decode_problem,
    skip_rest_of_line,
    too_long,
    unreadable,
)
from segbridge.exports.contracts import SourceRecord

RAW_BYTES = RAW_LIMIT * 4  # enough bytes for RAW_LIMIT characters in any encoding


class Failure(Enum):
    FIELDS = "fields"  # parsed, but the wrong number of fields
    DECODE = "decode"  # a line is not valid in the encoding
    CSV = "csv"  # the csv module refused the record


@dataclass(frozen=True)
class Explained:
    """A failed record, and the physical lines before the point where reading goes on (None:
    go on with the same reader, where it stopped)."""

    line: int
    error: str
    raw: str
    restart_after: int | None

    def record(self, position: int) -> SourceRecord:
        return unreadable(position, f"line {self.line}", self.error, self.raw)


@dataclass
class _Piece:
    line: int
    head: bytes  # the first RAW_BYTES, for the raw text
    complete: bool  # ends with a newline (or is the last line of the file)
    overlong: bool
    end: int  # byte offset after the piece
    decode_error: UnicodeDecodeError | None


CSV_MESSAGES = {
    "unexpected end of data": "unterminated quote: the file ends inside a quoted field",
}


class Recovery:
    def __init__(self, handle: BinaryIO, codec: str, limit: int) -> None:
        self.handle = handle
        self.codec = codec
        self.limit = limit
        self.mark = (0, handle.tell())

    def checkpoint(self, lines_before: int) -> None:
        self.mark = (lines_before, self.handle.tell())

    def explain(self, first: int, kind: Failure, message: str) -> Explained:
        """The failed record that starts on line ``first``; leaves the file where reading
        goes on."""
        stop = self.handle.tell()
        pieces = self._reread(first, stop)
        raw = clip(b"".join(p.head for p in pieces)[:RAW_BYTES].decode(self.codec, "replace"))
        long = next((p for p in pieces if p.overlong), None)
        if long is not None:
            return Explained(first, too_long(long.line, self.limit), raw,
                             self._after_long(pieces, long))
        if kind is Failure.FIELDS:
            self.handle.seek(stop)
            return Explained(first, f"line {first}: {message}", raw, None)
        bad = next((p for p in pieces if p.decode_error is not None), None)
        if bad is not None and bad.decode_error is not None:
            error = f"line {bad.line}: {decode_problem(bad.decode_error)}"
        else:
            last = pieces[-1].line if pieces else first
            error = f"line {first}: {_csv_reason(message, first, last)}"
        self.handle.seek(pieces[0].end if pieces else stop)
        return Explained(first, error, raw, first)

    def _reread(self, first: int, stop: int) -> list[_Piece]:
        lines_before, offset = self.mark
        handle = self.handle
        handle.seek(offset)
        line = lines_before + 1
        pieces: list[_Piece] = []
        while handle.tell() < stop:
            data = handle.readline(self.limit)
            if not data:
                break
            complete = data.endswith(b"\n") or (handle.tell() >= stop
                                                    and len(data) < self.limit)
            if line >= first:
                pieces.append(_Piece(line, data[:RAW_BYTES], complete,
                                     not complete and len(data) == self.limit,
                                     handle.tell(), self._decode_error(data)))
            if complete:
                line += 1
        return pieces

    def _decode_error(self, data: bytes) -> UnicodeDecodeError | None:
        try:
            data.decode(self.codec)
        except UnicodeDecodeError as exc:
            return exc
        return None

    def _after_long(self, pieces: list[_Piece], long: _Piece) -> int:
        """Go to the line after the overlong one; the physical lines before that point."""
        ending = next((p for p in pieces if p.line == long.line and p.complete), None)
        if ending is not None:
            self.handle.seek(ending.end)
        else:
            skip_rest_of_line(self.handle)
        return long.line


def _csv_reason(message: str, first: int, last: int) -> str:
    if message in CSV_MESSAGES:
        return CSV_MESSAGES[message]
    if message.startswith("field larger than field limit"):
        limit = message.rsplit("(", 1)[-1].rstrip(")")
        if last > first:
            return f"unterminated quote (or a field longer than {limit} characters)"
        return f"a field is longer than {limit} characters"
    if last > first:
        return f"{message} on line {last}; is the quote opened on line {first} closed?"
    return message

"""NDJSON files: one JSON object per line, parsed with orjson straight from the bytes.

Blank lines are not records. A line that is not valid JSON, not valid UTF-8, or a JSON value
that is not an object becomes an error record and the stream goes on; so does a record past
the caps (``limits``): a line longer than the size cap is skipped before it is parsed, a record
nested too deep or with too many fields after. Lines before the start position are counted,
not parsed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from segbridge.apps.files.boundaries import END, Block, Boundaries
from segbridge.apps.files.reading import (
    ReadShare,
    decode_problem,
    line_codec,
    open_binary,
    physical_lines,
    skip_bom,
    skip_rest_of_line,
    too_long,
    unreadable,
)
from segbridge.exports.contracts import NotRead, SourceRecord, Spans
from segbridge.exports.limits import RecordLimits, text_depth


def json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type: "an array", "a string", ..."""
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, bool):
        return "a JSON boolean"
    if value is None:
        return "JSON null"
    return "a JSON number"


class NdjsonExport(ReadShare):
    """A newline-delimited JSON file on the server: each line one record.

    ``records_in`` (a lane) parses only the lines of the wanted blocks; with ``boundaries``
    (``boundaries.py``) it reads only those blocks, each from its first line's offset."""

    boundaries: Boundaries | None = None

    def __init__(self, path: str | Path, *, encoding: str = "utf-8",
                 limits: RecordLimits | None = None) -> None:
        self.path = Path(path)
        self.codec = line_codec(encoding)
        self.limits = limits or RecordLimits()
        self.max_line_bytes = self.limits.max_bytes

    def __repr__(self) -> str:
        return f"NdjsonExport({str(self.path)!r})"

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        with self.opened(open_binary(self.path)) as handle:
            skip_bom(handle)
            yield from self._records(handle, Block(start_position, sys.maxsize))

    def records_in(self, spans: Spans) -> Iterator[SourceRecord | NotRead]:
        """The records in ``spans`` (a lane's blocks); the other lines are counted, not
        parsed (or, with ``boundaries``, not read)."""
        with self.opened(open_binary(self.path)) as handle:
            skip_bom(handle)
            boundaries = self.boundaries
            if boundaries is None or not boundaries.fits(handle):
                yield from self._records(handle, spans)
                return
            low, high = spans.around(0)
            while (mark := boundaries.mark(low)) is not None:
                if low in boundaries.skip:  # (the open file is the one scanned)
                    yield NotRead(low, boundaries.block_end(low))
                    low, high = spans.around(high)
                    continue
                offset, lines_before = mark
                handle.seek(offset)
                yield from self._records(handle, Block(low, high), low, lines_before)
                low, high = spans.around(high)

    def _records(self, handle: BinaryIO, spans: Spans, position: int = 0,
                 lines_before: int = 0) -> Iterator[SourceRecord]:
        """The records in ``spans`` from ``position`` (its line the one after
        ``lines_before``); a ``Block`` ends the reading at its end."""
        parse = self._parser()
        low, high = spans.around(position)
        limit = self.max_line_bytes
        for line, raw in enumerate(physical_lines(handle, limit), start=lines_before + 1):
            if len(raw) == limit and not raw.endswith(b"\n"):
                size = limit + skip_rest_of_line(handle)
                if position >= high:
                    low, high = spans.around(position)
                if low == END:
                    return
                if position >= low:
                    yield unreadable(position, f"line {line}", too_long(line, limit),
                                     _text(raw), size)
                position += 1
                continue
            if not raw or raw.isspace():
                continue
            if position >= high:
                low, high = spans.around(position)
                if low == END:
                    return
            if position >= low:
                yield parse(position, line, raw)
            position += 1

    def _parser(self) -> Callable[[int, int, bytes], SourceRecord]:
        codec, limits = self.codec, self.limits
        short, wide, max_depth, max_fields = (2 * limits.max_depth, 2 * limits.max_fields,
                                              limits.max_depth, limits.max_fields)

        def fits(raw: bytes, size: int) -> bool:  # limits.line_fits, for a line not short
            openers = raw.count(b"{") + raw.count(b"[")
            return openers <= max_depth and (
                size <= wide or openers + raw.count(b",") <= max_fields)

        def parse(position: int, line: int, raw: bytes) -> SourceRecord:
            try:
                value = orjson.loads(raw if codec == "utf-8" else raw.decode(codec))
            except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
                return unreadable(position, f"line {line}",
                                  f"line {line}: {_problem(raw, exc, codec, limits)}",
                                  _text(raw, codec), size=len(raw))
            if type(value) is not dict:
                return unreadable(position, f"line {line}",
                                  f"line {line}: {json_kind(value)}, not an object",
                                  _text(raw, codec), size=len(raw))
            size = len(raw)
            if (size > short or size > wide) and not fits(raw, size):
                problem = limits.shape_problem(value)
                if problem is not None:
                    return unreadable(position, f"line {line}", f"line {line}: {problem}",
                                      _text(raw, codec), size=len(raw))
            return SourceRecord(position, f"line {line}", value)

        return parse


def _problem(raw: bytes, exc: ValueError, codec: str, limits: RecordLimits) -> str:
    try:
        raw.decode(codec)
    except UnicodeDecodeError as bad:
        return decode_problem(bad)
    if "depth limit" in str(exc):  # orjson builds at most 1024 levels
        return limits.too_deep(text_depth(raw))
    return invalid_json(exc)


def invalid_json(exc: ValueError) -> str:
    """ "invalid JSON: unexpected character at character 5" (orjson's own line is always 1)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} at character {exc.pos + 1}"
    return f"invalid JSON: {exc}"


def _text(raw: bytes, codec: str = "utf-8") -> str:
    return raw[:16384].decode(codec, "replace")

"""JSON array files: a top-level array of objects, streamed item by item with ijson (yajl2_c).

Floats come out as Python floats (``use_float=True``), never Decimal. An item that is not an
object is an error record and the stream goes on; so is an item past the caps (``limits``).

The size cap holds while streaming: ijson builds items in C from what ``_Utf8Reader`` gives it,
and the reader counts the bytes given since the last finished item. Once they pass the cap, the
item being built is too large: the reader raises instead of reading on and the item is dropped
(never more than the cap and one read is held). ``_Scanner`` then walks the bytes from where
that pass started (outside strings, counting brackets and commas, building nothing) to where
the big item starts and ends: it becomes an error record with its exact size and an excerpt,
and a new pass goes on after it. Depth and field count are checked on each built item (the size
cap bounds what is built).

Invalid JSON ends the stream: after a syntax error a streaming parser cannot find the next
item, so the item where it failed becomes one error record and nothing follows. Files in
another encoding than UTF-8 are re-encoded on the fly (still streamed).
"""

from __future__ import annotations

import codecs
import io
import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import orjson

from segbridge.apps.files.ndjson import json_kind
from segbridge.apps.files.reading import (
    UTF8_NAMES,
    ReadShare,
    open_binary,
    skip_bom,
    unreadable,
)
from segbridge.exports.contracts import SourceRecord
from segbridge.exports.errors import ExportError
from segbridge.exports.limits import EXCERPT_CHARS, NESTED, RecordLimits, excerpt

CHUNK = 64 * 1024
PEEK = 64 * 1024
READ = 8 * 1024  # what ijson reads at a time: little, so brackets are counted finely
OPENERS_CAP = 4096  # brackets in what ijson is given for one item before the scanner decides


def _backend() -> Any:
    try:
        return ijson.get_backend("yajl2_c")
    except ImportError:  # pragma: no cover - the C backend ships with ijson's wheels
        return ijson


BACKEND = _backend()


class _Oversized(Exception):
    """Raised by the reader into ijson: the item being built may be larger than the cap, or
    nested too deep for ijson to build (its builder takes memory in the square of the depth:
    10,000 levels, 250 MB)."""


class _Utf8Reader:
    """A binary file-like object: what was peeked first, then the rest, as UTF-8 bytes.

    With a ``cap``, it counts the bytes and the brackets ("[" and "{", in strings too) given
    since the consumer last took an item (``item_taken``), and raises _Oversized rather than
    give more once the bytes pass the cap or the brackets OPENERS_CAP."""

    def __init__(self, head: bytes, rest: BinaryIO, codec: str,
                 cap: int | None = None) -> None:
        self._head = head
        self._rest = rest
        self._text = (None if codec == "utf-8"
                      else io.TextIOWrapper(rest, encoding=codec, newline=""))
        self.cap = cap
        self.given = 0  # bytes given since the last item was taken
        self.openers = 0  # brackets given since then

    def unread(self, data: bytes) -> None:
        self._head = data + self._head

    def item_taken(self) -> int:
        """The bytes given since the item before; counting starts again."""
        given, self.given, self.openers = self.given, 0, 0
        return given

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes with read(0) whether the file gives bytes
            return b""
        if self.cap is not None and self.given > self.cap:
            raise _Oversized
        data = self._read(size)
        if self.cap is not None:
            self.openers += data.count(b"[") + data.count(b"{")
            if self.openers > OPENERS_CAP:
                raise _Oversized
        self.given += len(data)
        return data

    def _read(self, size: int) -> bytes:
        if self._head:
            cut = size if 0 < size < len(self._head) else len(self._head)
            head, self._head = self._head[:cut], self._head[cut:]
            return head
        if self._text is None:
            return self._rest.read(size if size > 0 else CHUNK)
        return self._text.read(size if size > 0 else CHUNK).encode("utf-8")


class JsonArrayExport(ReadShare):
    """A file holding one JSON array of objects; each item is a record ("item 1", ...)."""

    def __init__(self, path: str | Path, *, encoding: str = "utf-8",
                 limits: RecordLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = limits or RecordLimits()
        # ijson reads this much at a time: at most a quarter of the cap, so only items larger
        # than about half the cap need their size measured after they are built
        self.read_size = max(256, min(READ, self.limits.max_bytes // 4))
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise ExportError(f"Unknown encoding '{encoding}'; use e.g. utf-8.",
                              cause="config") from None
        self.codec = "utf-8" if name in UTF8_NAMES else name

    def __repr__(self) -> str:
        return f"JsonArrayExport({str(self.path)!r})"

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        origin: int | None = None  # where a pass starts in the UTF-8 text (None: at its start)
        first = 0  # the position of the pass's first item
        while True:
            with self.opened(open_binary(self.path)) as handle:
                stream = self._stream_at(handle, origin)
                if stream is None:
                    return
                oversized = yield from self._items(stream, first, start_position)
            if oversized is None:
                return
            skipped = self._skip(origin, oversized - first)
            if skipped is None:  # only blank space was left
                return
            record = self._skipped_record(oversized, skipped)
            if oversized >= start_position:
                yield record
            if skipped.end is None or _stops(record):
                return
            origin, first = skipped.end, oversized + 1

    def _stream_at(self, handle: BinaryIO, origin: int | None) -> _Utf8Reader | None:
        """The UTF-8 text for ijson: the whole array, or "[" and the items from ``origin``."""
        if self.codec == "utf-8":
            skip_bom(handle)
        if origin is None:
            return self._stream(handle, self.limits.max_bytes)
        reader = self._reader_at(handle, origin)
        reader.unread(b"[")
        reader.given, reader.cap = 0, self.limits.max_bytes
        return reader

    def _reader_at(self, handle: BinaryIO, origin: int) -> _Utf8Reader:
        """The UTF-8 text from ``origin`` on (a byte offset in it, after any BOM)."""
        reader = _Utf8Reader(b"", handle, self.codec)
        if self.codec == "utf-8":
            handle.seek(origin, os.SEEK_CUR)
            return reader
        left = origin  # re-encoded on the fly: read and drop
        while left > 0:
            data = reader.read(min(CHUNK, left))
            if not data:
                break
            if len(data) > left:
                reader.unread(data[left:])
                break
            left -= len(data)
        return reader

    def _skip(self, origin: int | None, before: int) -> _Skipped | None:
        """Walk from ``origin`` past ``before`` items, then past the oversized one."""
        with open_binary(self.path) as handle:
            if self.codec == "utf-8":
                skip_bom(handle)
            reader = self._reader_at(handle, origin) if origin is not None \
                else _Utf8Reader(b"", handle, self.codec)
            scanner = _Scanner(reader, origin or 0, depth=0 if origin is None else 1,
                               keep=self.limits.max_bytes + 1)
            if origin is None and scanner.token() != ord("["):  # into the array
                return None
            return scanner.skip(before)

    def _skipped_record(self, position: int, skipped: _Skipped) -> SourceRecord:
        """The record of an item the scanner walked past: an error when it is over the cap;
        else (blank space had run the count up) the item itself, from its kept text."""
        ref = f"item {position + 1}"
        limits = self.limits
        if skipped.depth <= limits.max_depth and skipped.size <= limits.max_bytes:
            try:
                item = next(BACKEND.items(io.BytesIO(b"[" + skipped.head + b"]"), "item",
                                          use_float=True))
            except (ijson.JSONError, UnicodeDecodeError, StopIteration) as exc:
                return _broken(position, exc)
            return self._built(position, item, measure=True)
        text = skipped.head[:HEAD_BYTES].decode("utf-8", "replace")
        problem = limits.too_deep(skipped.depth) if skipped.depth > limits.max_depth \
            else limits.too_large(skipped.size)
        return unreadable(position, ref, f"{ref}: {problem}", text, skipped.size)

    def _stream(self, handle: BinaryIO, cap: int | None = None) -> _Utf8Reader | None:
        """The file as UTF-8 after checking it starts with "[" (None: an empty file)."""
        reader = _Utf8Reader(b"", handle, self.codec)
        head = b""
        while len(head) < PEEK:
            chunk = reader.read(CHUNK)
            if not chunk:
                break
            head += chunk
            if head.strip():
                break
        start = head.lstrip()[:1]
        if not start:
            return None
        if start != b"[":
            found = "an object" if start == b"{" else "not a JSON array"
            raise ExportError(f"{self.path.name} holds {found}; a JSON export needs a "
                              "top-level array of objects ([{...}, {...}]). For one object "
                              "per line, use the NDJSON type.", cause="not_an_array")
        reader.unread(head)
        reader.given, reader.cap = 0, cap
        return reader

    def _items(self, stream: _Utf8Reader, first: int,
               begin: int) -> Generator[SourceRecord, None, int | None]:
        """Items built by ijson in C, from position ``first``; returns the position of an item
        over the size cap (None: the array ended)."""
        items = BACKEND.items(stream, "item", use_float=True, buf_size=self.read_size)
        position = first
        measure_from = self.limits.max_bytes - self.read_size
        fits = self._fits
        while True:
            try:
                item = next(items)
            except StopIteration:
                return None
            except _Oversized:
                return position
            except (ijson.JSONError, UnicodeDecodeError) as exc:
                if position >= begin:
                    yield _broken(position, exc)
                return None
            given = stream.given
            stream.given = stream.openers = 0  # (item_taken, inlined)
            if position >= begin:
                measure = given > measure_from
                if type(item) is dict and not measure and fits(item):
                    yield SourceRecord(position, f"item {position + 1}", item)
                else:
                    yield self._built(position, item, measure=measure)
            position += 1

    def _fits(self, item: dict[str, Any]) -> bool:
        """The common case, cheaply: an object surely within the caps (or False: look closer,
        with _built). A flat object is counted in C; else its JSON text bounds it (see
        RecordLimits.line_fits, inlined for the common short text)."""
        limits = self.limits
        if NESTED.isdisjoint(map(type, item.values())):
            return len(item) <= limits.max_fields
        try:
            text = orjson.dumps(item)
        except orjson.JSONEncodeError:
            return False
        size = len(text)
        if size > 2 * limits.max_fields or size > limits.max_bytes:
            return limits.line_fits(text) and size <= limits.max_bytes
        return text.count(b"{") + text.count(b"[") <= limits.max_depth

    def _built(self, position: int, item: Any, *, measure: bool) -> SourceRecord:
        """A built item, within the caps (``measure``: it may be larger than the size cap)."""
        limits = self.limits
        size: int | None = None
        if type(item) is dict and NESTED.isdisjoint(map(type, item.values())):
            problem = limits.shape_problem(item)  # a flat object: counted in C
            if problem is None and measure:
                size = len(orjson.dumps(item))
        else:
            problem, size = self._nested_problem(item)
        if problem is None and size is not None and size > limits.max_bytes:
            problem = limits.too_large(size)
        if problem is not None:
            ref = f"item {position + 1}"
            return unreadable(position, ref, f"{ref}: {problem}", excerpt(item), size)
        return _record(position, item)

    def _nested_problem(self, item: Any) -> tuple[str | None, int | None]:
        """(why the item breaks the depth or field cap, its size): its JSON text tells
        cheaply when it surely fits (few brackets and commas); else it is walked."""
        try:
            text = orjson.dumps(item)
        except orjson.JSONEncodeError:  # deeper than orjson writes: far past the cap
            return self.limits.shape_problem(item), None
        if self.limits.line_fits(text):
            return None, len(text)
        return self.limits.shape_problem(item), len(text)


@dataclass(frozen=True)
class _Skipped:
    """An item walked past: its size, its depth, its first bytes (all of them when it is
    within the cap), and where the text goes on after it (None: it was the last item)."""

    size: int
    depth: int
    head: bytes
    end: int | None


_STRUCTURE = re.compile(rb'[\[\]{},"]')
_STRING_END = re.compile(rb'["\\]')
_NOT_BLANK = re.compile(rb"[^ \t\r\n]")
HEAD_BYTES = 4 * EXCERPT_CHARS  # of an oversized item, for its excerpt
BACKSLASH, QUOTE = 0x5C, 0x22


class _Scanner:
    """Walks JSON text without building anything: brackets and commas outside strings.
    ``offset`` is the position in the text of ``buf[0]``; ``depth`` 1 is inside the array."""

    def __init__(self, reader: _Utf8Reader, offset: int, depth: int, keep: int) -> None:
        self.reader = reader
        self.keep = keep  # bytes of the item kept at most
        self.buf = b""
        self.pos = 0
        self.offset = offset
        self.depth = depth
        self.in_string = False
        self.escaped = False
        self.mark: int | None = None  # where the recorded item starts (in the text)
        self.head = bytearray()

    def skip(self, before: int) -> _Skipped | None:
        """Past ``before`` items, then past the next one, recording it."""
        passed = 0
        while passed < before:
            token = self.token()
            if token is None or (token == ord("]") and self.depth == 0):
                return None
            passed += token == ord(",") and self.depth == 1
        if not self._blank_skipped():
            return None
        self.mark = self.offset + self.pos
        deepest = 0
        while True:
            token = self.token()
            if token is None or (token == ord("]") and self.depth == 0):
                return self._skipped(None, deepest)
            if token == ord(",") and self.depth == 1:
                return self._skipped(self.offset + self.pos, deepest)
            deepest = max(deepest, self.depth - 1)

    def _blank_skipped(self) -> bool:
        """Past blank space; False when the text or the array ends there."""
        while True:
            if self.pos >= len(self.buf) and not self._fill():
                return False
            found = _NOT_BLANK.search(self.buf, self.pos)
            if found is not None:
                self.pos = found.start()
                return self.buf[self.pos] != ord("]")
            self.pos = len(self.buf)

    def _skipped(self, end: int | None, depth: int) -> _Skipped:
        assert self.mark is not None
        stop = self.offset + self.pos - (1 if self.buf else 0)  # before the comma or "]"
        self._record_until(self.pos - 1)
        head = bytes(self.head).rstrip()
        size = stop - self.mark
        return _Skipped(len(head) if size <= self.keep else size, depth, head,
                        end)  # (head: all of it when within keep)

    def token(self) -> int | None:
        """The next bracket, comma or opening quote outside a string (None: the text ended);
        ``pos`` is then after it."""
        while True:
            if self.pos >= len(self.buf) and not self._fill():
                return None
            if self.escaped:
                self.pos, self.escaped = self.pos + 1, False
                continue
            if self.in_string:
                found = _STRING_END.search(self.buf, self.pos)
                if found is None:
                    self.pos = len(self.buf)
                elif self.buf[found.start()] == BACKSLASH:
                    self.pos, self.escaped = found.start() + 1, True
                else:
                    self.pos, self.in_string = found.end(), False
                continue
            found = _STRUCTURE.search(self.buf, self.pos)
            if found is None:
                self.pos = len(self.buf)
                continue
            self.pos = found.end()
            byte = self.buf[found.start()]
            if byte == QUOTE:
                self.in_string = True
            elif byte in b"[{":
                self.depth += 1
            elif byte in b"]}":
                self.depth -= 1
            return byte

    def _fill(self) -> bool:
        self._record_until(len(self.buf))
        self.offset += len(self.buf)
        self.buf, self.pos = self.reader.read(CHUNK), 0
        return bool(self.buf)

    def _record_until(self, stop: int) -> None:
        if self.mark is None or len(self.head) >= self.keep:
            return
        start = max(self.mark - self.offset, 0)
        if stop > start:
            self.head += self.buf[start:stop][:self.keep - len(self.head)]


def _stops(record: SourceRecord) -> bool:
    """Invalid JSON ends the stream (see _broken), wherever it was found."""
    return record.error is not None and record.error.endswith("(reading stops here)")


def _record(position: int, item: Any) -> SourceRecord:
    ref = f"item {position + 1}"
    if type(item) is dict:
        return SourceRecord(position, ref, item)
    return unreadable(position, ref, f"{ref}: {json_kind(item)}, not an object", excerpt(item))


def _broken(position: int, exc: Exception) -> SourceRecord:
    ref = f"item {position + 1}"
    if isinstance(exc, UnicodeDecodeError):
        return unreadable(position, ref, f"{ref}: not valid {exc.encoding} (reading stops here)",
                          None)
    message = exc.args[0] if exc.args else str(exc)
    text = (message.decode("utf-8", "replace") if isinstance(message, bytes)
            else str(message))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0] if lines else "invalid JSON"
    context = lines[1] if len(lines) > 1 else None
    return unreadable(position, ref, f"{ref}: invalid JSON: {reason} (reading stops here)",
                      context)


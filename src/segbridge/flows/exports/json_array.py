"""JSON array files: a top-level array of objects, streamed item by item with ijson (yajl2_c).

Floats come out as Python floats (``use_float=True``), never Decimal. An item that is not an
object is an error record and the stream goes on; so is an item past the caps (``limits``).

The size cap holds while streaming: ijson builds items in C from what ``_Utf8Reader`` gives it,
and the reader counts the bytes given since the last finished item. Once they pass the cap, the
item being built is too large: the reader raises instead of reading on, the item is dropped, and
the file is read again from its start as parser events (``_CappedItem``), skipping the items
already given, building each later item only within the caps (slower, but only for a file that
holds an item over the cap). Depth and field count are checked on each built item (the size
cap bounds what is built); in the event pass, while it is built.

Invalid JSON ends the stream: after a syntax error a streaming parser cannot find the next
item, so the item where it failed becomes one error record and nothing follows. Files in
another encoding than UTF-8 are re-encoded on the fly (still streamed).
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import orjson

from segbridge.flows.contracts import SourceRecord
from segbridge.flows.exports.errors import ExportError
from segbridge.flows.exports.limits import NESTED, RecordLimits, excerpt
from segbridge.flows.exports.ndjson import json_kind
from segbridge.flows.exports.source import (
    UTF8_NAMES,
    ReadShare,
    open_binary,
    skip_bom,
    unreadable,
)

CHUNK = 64 * 1024
PEEK = 64 * 1024


def _backend() -> Any:
    try:
        return ijson.get_backend("yajl2_c")
    except ImportError:  # pragma: no cover - the C backend ships with ijson's wheels
        return ijson


BACKEND = _backend()


class _Oversized(Exception):
    """Raised by the reader into ijson: the item being built is larger than the cap."""


class _Utf8Reader:
    """A binary file-like object: what was peeked first, then the rest, as UTF-8 bytes.

    With a ``cap``, it counts the bytes given since the consumer last took an item
    (``item_taken``) and raises _Oversized rather than give more once they pass the cap."""

    def __init__(self, head: bytes, rest: BinaryIO, codec: str,
                 cap: int | None = None) -> None:
        self._head = head
        self._rest = rest
        self._text = (None if codec == "utf-8"
                      else io.TextIOWrapper(rest, encoding=codec, newline=""))
        self.cap = cap
        self.given = 0  # bytes given since the last item was taken

    def unread(self, data: bytes) -> None:
        self._head = data + self._head

    def item_taken(self) -> int:
        """The bytes given since the item before; counting starts again."""
        given, self.given = self.given, 0
        return given

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes with read(0) whether the file gives bytes
            return b""
        if self.cap is not None and self.given > self.cap:
            raise _Oversized
        data = self._read(size)
        self.given += len(data)
        return data

    def _read(self, size: int) -> bytes:
        if self._head:
            head, self._head = self._head, b""
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
        # ijson reads this much at a time: a quarter of the cap, so only items larger than
        # about half the cap need their size measured after they are built
        self.read_size = max(256, min(CHUNK, self.limits.max_bytes // 4))
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise ExportError(f"Unknown encoding '{encoding}'; use e.g. utf-8.",
                              cause="config") from None
        self.codec = "utf-8" if name in UTF8_NAMES else name

    def __repr__(self) -> str:
        return f"JsonArrayExport({str(self.path)!r})"

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        with self.opened(open_binary(self.path)) as handle:
            if self.codec == "utf-8":
                skip_bom(handle)
            stream = self._stream(handle, self.limits.max_bytes)
            if stream is not None:
                yield from self._items(stream, start_position)

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

    def _items(self, stream: _Utf8Reader, begin: int) -> Iterator[SourceRecord]:
        """Items built by ijson in C; from an item over the size cap on, the event pass."""
        items = BACKEND.items(stream, "item", use_float=True, buf_size=self.read_size)
        position = 0
        measure_from = self.limits.max_bytes - self.read_size
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except _Oversized:
                yield from self._events_from(position, begin)
                return
            except (ijson.JSONError, UnicodeDecodeError) as exc:
                if position >= begin:
                    yield _broken(position, exc)
                return
            given = stream.item_taken()
            if position >= begin:
                yield self._built(position, item, measure=given > measure_from)
            position += 1

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

    def _events_from(self, big: int, begin: int) -> Iterator[SourceRecord]:
        """The file read again as events: items before ``big`` skipped (already given), item
        ``big`` too large, the later ones built within the caps."""
        with self.opened(open_binary(self.path)) as handle:
            if self.codec == "utf-8":
                skip_bom(handle)
            stream = self._stream(handle)
            assert stream is not None  # (it was read once already)
            events = BACKEND.basic_parse(stream, use_float=True, buf_size=CHUNK)
            position, item, started = 0, None, False
            try:
                for event, value in events:
                    if item is None:
                        if not started or event == "end_array":
                            started = True  # the array's own start and end
                            continue
                        keep = position >= big and position >= begin
                        item = _CappedItem(self.limits, build=keep)
                    if item.add(event, value):
                        if position >= big and position >= begin:
                            yield item.record(position, too_large=position == big)
                        position, item = position + 1, None
            except (ijson.JSONError, UnicodeDecodeError) as exc:
                if position >= begin and position >= big:
                    yield _broken(position, exc)


class _CappedItem:
    """One item built from parser events, only while it is within the caps: past one, what
    was built is kept as an excerpt and the rest of the item is only counted."""

    def __init__(self, limits: RecordLimits, *, build: bool) -> None:
        self.limits = limits
        self.building = build
        self.root: Any = None
        self.stack: list[Any] = []
        self.key: str = ""
        self.size = self.fields = self.depth = self.deepest = 0
        self.text: str | None = None  # the excerpt, once building stopped

    def add(self, event: str, value: Any) -> bool:
        """Take one event; True when the item is complete."""
        if event == "map_key":
            self.key = value
            self.size += len(value) + 3
            return False
        if event == "start_map" or event == "start_array":
            self.depth += 1
            self.deepest = max(self.deepest, self.depth)
            container: Any = {} if event == "start_map" else []
            self._put(container, 2)
            if self.building:
                self.stack.append(container)
            return False
        if event == "end_map" or event == "end_array":
            self.depth -= 1
            if self.building:
                self.stack.pop()
            return self.depth == 0
        self._put(value, len(value) + 3 if isinstance(value, str) else 6)
        return self.depth == 0

    def _put(self, value: Any, cost: int) -> None:
        self.size += cost
        if self.depth > 1 or (self.depth == 1 and type(value) not in (dict, list)):
            self.fields += 1
        if not self.building:
            return
        if not self.stack:
            self.root = value
        elif type(self.stack[-1]) is dict:
            self.stack[-1][self.key] = value
        else:
            self.stack[-1].append(value)
        limits = self.limits
        if self.size > limits.max_bytes or self.deepest > limits.max_depth \
                or self.fields > limits.max_fields:
            self.text = excerpt(self.root)
            self.building, self.root, self.stack = False, None, []

    def record(self, position: int, *, too_large: bool) -> SourceRecord:
        limits = self.limits
        if self.deepest > limits.max_depth:
            problem: str | None = limits.too_deep(self.deepest)
        elif self.fields > limits.max_fields:
            problem = limits.too_many_fields(self.fields)
        elif self.size > limits.max_bytes or too_large:
            problem = limits.too_large()
        else:
            return _record(position, self.root)
        ref = f"item {position + 1}"
        text = self.text if self.text is not None else excerpt(self.root)
        return unreadable(position, ref, f"{ref}: {problem}", text)


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


"""JSON array files: a top-level array of objects, streamed item by item with ijson (yajl2_c).

Floats come out as Python floats (``use_float=True``), never Decimal. An item that is not an
object is an error record and the stream goes on. Invalid JSON ends the stream: after a syntax
error a streaming parser cannot find the next item, so the item where it failed becomes one
error record and nothing follows. Files in another encoding than UTF-8 are re-encoded on the
fly (still streamed).
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


class _Utf8Reader:
    """A binary file-like object: what was peeked first, then the rest, as UTF-8 bytes."""

    def __init__(self, head: bytes, rest: BinaryIO, codec: str) -> None:
        self._head = head
        self._rest = rest
        self._text = (None if codec == "utf-8"
                      else io.TextIOWrapper(rest, encoding=codec, newline=""))

    def unread(self, data: bytes) -> None:
        self._head = data + self._head

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes with read(0) whether the file gives bytes
            return b""
        if self._head:
            head, self._head = self._head, b""
            return head
        if self._text is None:
            return self._rest.read(size if size > 0 else CHUNK)
        return self._text.read(size if size > 0 else CHUNK).encode("utf-8")


class JsonArrayExport(ReadShare):
    """A file holding one JSON array of objects; each item is a record ("item 1", ...)."""

    def __init__(self, path: str | Path, *, encoding: str = "utf-8") -> None:
        self.path = Path(path)
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
            stream = self._stream(handle)
            if stream is not None:
                yield from self._items(stream, start_position)

    def _stream(self, handle: BinaryIO) -> _Utf8Reader | None:
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
        return reader

    def _items(self, stream: _Utf8Reader, begin: int) -> Iterator[SourceRecord]:
        items = BACKEND.items(stream, "item", use_float=True)
        position = 0
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except (ijson.JSONError, UnicodeDecodeError) as exc:
                if position >= begin:
                    yield _broken(position, exc)
                return
            if position >= begin:
                yield _record(position, item)
            position += 1


def _record(position: int, item: Any) -> SourceRecord:
    ref = f"item {position + 1}"
    if type(item) is dict:
        return SourceRecord(position, ref, item)
    return unreadable(position, ref, f"{ref}: {json_kind(item)}, not an object", _dump(item))


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


def _dump(item: Any) -> str:
    try:
        return orjson.dumps(item).decode("utf-8")
    except TypeError:
        return repr(item)

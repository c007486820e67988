"""Reading one page's records from a streamed answer, without loading the answer whole.

A JSON answer is parsed as a stream of events (ijson, C backend): the items of the array at
the records path are built one at a time (``data.items``: the array under ``data``/``items``;
``$`` or empty: the answer is the array), and the few scalars the pagination needs (a cursor,
a next URL) are picked up on the way. An item nested deeper than the records may be is never
built. An NDJSON answer is read line by line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import ijson
import orjson

from segbridge.exports.errors import ExportError

CONTAINERS = ("start_map", "start_array")
ENDS = ("end_map", "end_array")
SCALARS = frozenset({"string", "number", "boolean", "null"})
MAX_KEYS_SHOWN = 12


def prefix_of(path: str | None) -> str:
    """A dotted JSON path (``data.items``, ``$.data.items``, ``$``, empty) as ijson's
    prefix."""
    text = (path or "").strip()
    if text in ("", "$"):
        return ""
    return text.removeprefix("$.")


class TooDeep:
    """An item nested deeper than a record may be (it was skipped, not built)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth


@dataclass
class PageFound:
    """What one page said besides its records."""

    values: dict[str, Any] = field(default_factory=dict)  # picked-up scalars, by path
    array_seen: bool = False
    top_keys: list[str] = field(default_factory=list)


class ByteStream:
    """A file-like ``read(n)`` over an iterator of byte chunks (ijson reads files)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._rest = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._rest) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._rest += chunk
        if size < 0:
            data, self._rest = self._rest, b""
        else:
            data, self._rest = self._rest[:size], self._rest[size:]
        return data


def json_items(chunks: Iterable[bytes], records_path: str, wanted: Iterable[str],
               found: PageFound, max_depth: int) -> Iterator[Any]:
    """The items of the records array, one at a time; ``found`` gets the wanted scalars."""
    items = prefix_of(records_path)
    item_prefix = f"{items}.item" if items else "item"
    wanted_prefixes = {prefix_of(path): path for path in wanted}
    builder: Any = None
    depth = too_deep = 0
    for prefix, event, value in ijson.parse(ByteStream(chunks), use_float=True):
        if depth:
            depth += (event in CONTAINERS) - (event in ENDS)
            if builder is not None:
                builder.event(event, value)
                if depth > max_depth:
                    builder = None
                    too_deep = depth
            if depth == 0:
                yield builder.value if builder is not None else TooDeep(too_deep)
                builder = None
            continue
        if prefix == item_prefix:
            if event in CONTAINERS:
                builder, depth, too_deep = ijson.ObjectBuilder(), 1, 0
                builder.event(event, value)
            else:
                yield value
            continue
        _note(found, prefix, event, value, items, wanted_prefixes)


def _note(found: PageFound, prefix: str, event: str, value: Any, items: str,
          wanted: dict[str, str]) -> None:
    if prefix == items and event == "start_array":
        found.array_seen = True
    elif event in SCALARS and prefix in wanted:
        found.values[wanted[prefix]] = value
    elif prefix == "" and event == "map_key" and len(found.top_keys) < MAX_KEYS_SHOWN:
        found.top_keys.append(str(value))


def ndjson_items(chunks: Iterable[bytes], max_bytes: int) -> Iterator[Any]:
    """Each line's value; a line that is not JSON, or longer than ``max_bytes`` (never held
    whole: the rest of it is skipped), is a ``BadLine``."""
    pending = b""
    skipping = False
    for chunk in chunks:
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if skipping:
                skipping = False
                continue
            yield from _ndjson_line(line)
        if len(pending) > max_bytes:
            if not skipping:
                yield BadLine(pending[:200].decode("utf-8", "replace"),
                              f"the line is longer than {max_bytes:,} bytes "
                              "(SEGBRIDGE_RECORD_MAX_BYTES)")
            pending, skipping = b"", True
    if pending and not skipping:
        yield from _ndjson_line(pending)


def _ndjson_line(line: bytes) -> Iterator[Any]:
    if not line.strip():
        return
    try:
        yield orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        yield BadLine(line.decode("utf-8", "replace"), str(exc))


class BadLine:
    """An NDJSON line that is not JSON."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason


def no_records_there(records_path: str, found: PageFound, url: str) -> ExportError:
    where = prefix_of(records_path) or "$ (the top level)"
    keys = f" Its top-level keys are: {', '.join(found.top_keys)}." if found.top_keys else ""
    return ExportError(f"The answer of {url} has no array at {where}.{keys} Set the export's "
                       "records to the path of the records array, e.g. data.items.",
                       cause="records_path")

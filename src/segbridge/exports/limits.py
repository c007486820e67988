"""The caps on every record of every export: nesting depth, size and field count.

A record past a cap is a record error with a reason that names the setting, and the export
goes on with the next record::

    the record is nested 300 levels deep; at most 64 are allowed (SEGBRIDGE_RECORD_MAX_DEPTH)
    the record is 2,000,000 bytes; at most 1,048,576 bytes are allowed (SEGBRIDGE_RECORD_MAX_BYTES)
    the record has 20,000 fields; at most 10,000 are allowed (SEGBRIDGE_RECORD_MAX_FIELDS)

Depth counts containers: a flat object is 1 level deep, ``{"a": {"b": 1}}`` is 2. Fields are
the keys of every object and the items of every array, at every level. Nothing here recurses
(a hostile record may be nested a million levels deep), so checking never fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from segbridge.core.settings import Settings

NESTED = frozenset({dict, list})
EXCERPT_CHARS = 2048  # of a record's text kept with its error


@dataclass(frozen=True)
class RecordLimits:
    """The caps of one export (the run's settings; a lane gets them in its spec)."""

    max_depth: int = 64
    max_bytes: int = 1_048_576
    max_fields: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordLimits:
        return cls(max_depth=settings.record_max_depth, max_bytes=settings.record_max_bytes,
                   max_fields=settings.record_max_fields)

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    def too_large(self, size: int) -> str:
        return (f"the record is {size:,} bytes; at most {self.max_bytes:,} bytes are allowed "
                "(SEGBRIDGE_RECORD_MAX_BYTES)")

    def too_deep(self, depth: int, *, at_least: bool = False) -> str:
        levels = f"more than {depth:,}" if at_least else f"{depth:,}"
        return (f"the record is nested {levels} levels deep; at most {self.max_depth} are "
                "allowed (SEGBRIDGE_RECORD_MAX_DEPTH)")

    def too_many_fields(self, fields: int) -> str:
        return (f"the record has {fields:,} fields; at most {self.max_fields:,} are allowed "
                "(SEGBRIDGE_RECORD_MAX_FIELDS)")

    def too_many_columns(self, source: str, columns: int, fix: str) -> str | None:
        """Why every record of a source with this many columns would fail, or None."""
        if columns <= self.max_fields:
            return None
        return (f"{source} {columns:,} columns; a record may have at most {self.max_fields:,} "
                f"fields (SEGBRIDGE_RECORD_MAX_FIELDS). {fix}")

    def shape_problem(self, value: Any) -> str | None:
        """Why a parsed record breaks the depth or field cap (None: it does not)."""
        if type(value) is dict and NESTED.isdisjoint(map(type, value.values())):
            fields = len(value)  # a flat record: the common case, checked in C
            return self.too_many_fields(fields) if fields > self.max_fields else None
        depth, fields = shape(value)
        if depth > self.max_depth:
            return self.too_deep(depth)
        if fields > self.max_fields:
            return self.too_many_fields(fields)
        return None

    def line_fits(self, line: bytes) -> bool:
        """A cheap bound from a record's JSON text: True when its record surely fits the
        depth and field caps, so it need not be walked. A level takes two bytes and so does a
        field, so a short text fits; else its brackets bound the depth, and its brackets and
        commas the fields."""
        size = len(line)
        if size <= 2 * self.max_depth and size <= 2 * self.max_fields:
            return True
        openers = line.count(b"{") + line.count(b"[")
        return openers <= self.max_depth and (
            size <= 2 * self.max_fields or openers + line.count(b",") <= self.max_fields)


def shape(value: Any) -> tuple[int, int]:
    """(depth, fields) of a parsed JSON value, without recursion."""
    if type(value) not in NESTED:
        return 0, 0
    deepest, fields = 1, len(value)
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        values = container.values() if type(container) is dict else container
        if NESTED.isdisjoint(map(type, values)):
            continue
        inner = depth + 1
        for item in values:
            if type(item) in NESTED:
                fields += len(item)
                stack.append((item, inner))
                if inner > deepest:
                    deepest = inner
    return deepest, fields


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def text_depth(raw: bytes) -> int:
    """How deep the brackets of a JSON text nest (strings left out): for a text too deep for
    the parser to build, so the error can say how deep it is."""
    depth = deepest = 0
    for byte in _STRINGS.sub(b"", raw):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def excerpt(value: Any, limit: int = EXCERPT_CHARS - 4) -> str:
    """The start of a value's JSON text, at most ``limit`` characters, however deep or big the
    value is (written without recursion, token by token; ends with " ..." when cut)."""
    out: list[str] = []
    length = 0
    for token in _tokens(value):
        out.append(token)
        length += len(token)
        if length > limit:
            return "".join(out)[:limit] + " ..."
    return "".join(out)


_END = object()


def _tokens(value: Any) -> Iterator[str]:
    """A value's compact JSON text in pieces; frames: [entries, closer, is_object, first]."""
    frames: list[list[Any]] = []
    item, fresh = value, True
    while True:
        if fresh:
            if type(item) is dict:
                yield "{"
                frames.append([iter(item.items()), "}", True, True])
            elif type(item) is list:
                yield "["
                frames.append([iter(item), "]", False, True])
            else:
                yield _scalar(item)
        if not frames:
            return
        frame = frames[-1]
        entry: Any = next(frame[0], _END)
        if entry is _END:
            frames.pop()
            yield frame[1]
            fresh = False
            continue
        comma = "" if frame[3] else ","
        frame[3] = False
        if frame[2]:
            key, item = entry
            yield f"{comma}{_scalar(str(key))}:"
        else:
            item = entry
            if comma:
                yield comma
        fresh = True


def _scalar(value: Any) -> str:
    if isinstance(value, str) and len(value) > EXCERPT_CHARS:
        value = value[:EXCERPT_CHARS]
    try:
        return orjson.dumps(value, default=str).decode("utf-8")
    except (TypeError, ValueError):
        return repr(value)[:EXCERPT_CHARS]


def clip_text(text: str, size: int | None = None, limit: int = EXCERPT_CHARS) -> str:
    """At most ``limit`` characters of a record's text; when cut, " ... (N bytes)" says how
    big it was (``size``: the bytes of the whole record, when known; a line end may be left
    out of ``text``)."""
    if len(text) <= limit:
        whole = len(text.encode("utf-8", "replace"))
        if size is None or size <= whole + 2:
            return text
    total = size if size is not None else len(text.encode("utf-8", "replace"))
    body = text[:limit]
    return f"{body.removesuffix(' ...')} ... ({total:,} bytes)"  # (an excerpt's own end)

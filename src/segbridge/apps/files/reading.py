"""What the file exports share: opening a file, line-safe encodings, BOMs, long lines, raw text.

Files are read as binary lines and each physical line is decoded on its own, so one bad line
fails one record. That needs an encoding in which a newline is always the byte ``\\n`` and
never part of another character: UTF-8 and the single-byte encodings (latin-1, cp1252...).
UTF-16 and UTF-32 files are refused with a message to convert them.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO

from segbridge.exports.contracts import SourceRecord
from segbridge.exports.errors import ExportError
from segbridge.exports.limits import EXCERPT_CHARS, clip_text

RAW_LIMIT = EXCERPT_CHARS  # characters of raw text kept with an unreadable record
MAX_LINE_BYTES = 16 * 1024 * 1024  # the longest line of a CSV or NDJSON file ever (a longer
# physical line is one error record, never held whole); the record size cap is usually lower
UTF8_NAMES = frozenset({"utf-8", "utf-8-sig"})
BOM = codecs.BOM_UTF8


class ReadShare:
    """What a file export has read of its file, as a share of its size (for progress bars).

    Asked by the thread that reads the records, between two records; None before the file is
    opened, 1 once it is read and closed."""

    _handle: BinaryIO | None = None
    _size: int = 0

    def opened(self, handle: BinaryIO) -> BinaryIO:
        self._handle, self._size = handle, os.fstat(handle.fileno()).st_size
        return handle

    def read_share(self) -> float | None:
        handle = self._handle
        if handle is None:
            return None
        if handle.closed or not self._size:
            return 1.0
        return min(handle.tell() / self._size, 1.0)


def open_binary(path: str | Path) -> BinaryIO:
    """Open a file for streaming, or raise an ExportError a person can act on."""
    target = Path(path)
    try:
        return target.open("rb")
    except FileNotFoundError:
        raise ExportError(f"The file {target} does not exist; check the path or upload it "
                          "again.", cause="file_not_found") from None
    except IsADirectoryError:
        raise ExportError(f"{target} is a folder, not a file.", cause="file_not_found") from None
    except PermissionError:
        raise ExportError(f"segbridge may not read {target}; give its user read access.",
                          cause="file_permission") from None
    except OSError as exc:
        raise ExportError(f"The file {target} cannot be opened: {exc.strerror}.",
                          cause="file_error") from None


def line_codec(encoding: str) -> str:
    """The codec name to decode lines with ("utf-8-sig" becomes "utf-8"; the BOM is skipped)."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ExportError(f"Unknown encoding '{encoding}'; use e.g. utf-8 or cp1252.",
                          cause="config") from None
    if name in UTF8_NAMES:
        return "utf-8"
    try:
        line_safe = "\n\r,;\t\"'|".encode(name) == b"\n\r,;\t\"'|"
    except (UnicodeError, LookupError):
        line_safe = False
    if not line_safe:
        raise ExportError(f"The encoding {encoding} is not supported for line-based files; "
                          "convert the file to UTF-8 first.", cause="config")
    return name


def skip_bom(handle: BinaryIO) -> None:
    """Skip a UTF-8 byte-order mark at the start of the file (whatever the encoding option)."""
    if handle.read(3) != BOM:
        handle.seek(0)


def physical_lines(handle: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The file's lines as bytes with their line ends, in pieces of at most ``limit`` bytes."""
    return iter(partial(handle.readline, limit), b"")


def skip_rest_of_line(handle: BinaryIO) -> int:
    """Read on to the end of the current line (after a piece of an overlong line); the bytes
    skipped."""
    skipped = 0
    for rest in physical_lines(handle, 1024 * 1024):
        skipped += len(rest)
        if rest.endswith(b"\n"):
            break
    return skipped


def too_long(line: int, limit: int) -> str:
    return (f"line {line}: longer than {_size(limit)} (the line is skipped); a record may "
            "have at most that many bytes (SEGBRIDGE_RECORD_MAX_BYTES)")


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count // (1024 * 1024)} MB"
    return f"{count} bytes"


def decode_problem(exc: UnicodeDecodeError) -> str:
    """ "not valid UTF-8 at byte 12": byte 1 is the first byte of the line."""
    label = "UTF-8" if exc.encoding.replace("_", "-").lower() in UTF8_NAMES else exc.encoding
    return f"not valid {label} at byte {exc.start + 1}"


def clip(text: str, size: int | None = None) -> str:
    """An excerpt of a record's raw text: at most RAW_LIMIT characters, and when cut
    " ... (N bytes)" (``size``: the bytes of the whole record, when known)."""
    return clip_text(text, size, RAW_LIMIT)


def unreadable(position: int, ref: str, error: str, raw: str | None,
               size: int | None = None) -> SourceRecord:
    return SourceRecord(position, ref, None, error=error,
                        raw=clip(raw.rstrip("\r\n"), size) if raw is not None else None)


def dedupe(names: list[str]) -> list[str]:
    """Column names made unique ("email", "email_2") and never empty ("column_3")."""
    seen: set[str] = set()
    result: list[str] = []
    for index, name in enumerate(names, start=1):
        base = name if name != "" else f"column_{index}"
        unique, suffix = base, 2
        while unique in seen:
            unique, suffix = f"{base}_{suffix}", suffix + 1
        seen.add(unique)
        result.append(unique)
    return result


"""Uploaded files for file exports, kept under ``<home>/uploads/<account>/<id>``.

An upload is at most ``SEGBRIDGE_MAX_UPLOAD_MB``: a larger declared size (Content-Length) is
refused before anything is written, and a body that grows past the limit while it streams is
cut off, its partial file deleted; a refused upload leaves no file and no row. Files are
created 0600 and their folders 0700 (only segbridge's user reads what was uploaded).

A browser form or ``curl -F file=@orders.csv`` sends the file inside a multipart/form-data
envelope: ``open_multipart_file`` reads such a body as it streams and gives the file part's
name and bytes alone (the envelope and any other field are not stored).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from segbridge.core.errors import FieldProblem, NotFound, PayloadTooLarge, ValidationFailed
from segbridge.core.ids import new_id
from segbridge.flows.views import UploadPublic
from segbridge.storage.db import Database
from segbridge.storage.models import Upload

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FILE_MODE = 0o600
FOLDER_MODE = 0o700
MULTIPART = "multipart/form-data"
MULTIPART_OTHER_BYTES = 64 * 1024  # the envelope and any fields beside the file, at most
HOW_TO_SEND = ("send the file as a form field with a file name (curl -F file=@orders.csv), "
               "or as the raw body (curl --data-binary @orders.csv)")


def upload_path(home: Path, account_id: str, upload_id: str) -> Path:
    return home / "uploads" / account_id / upload_id


def max_upload_bytes(max_upload_mb: float) -> int:
    return int(max_upload_mb * 1024 * 1024)


def too_large(max_bytes: int) -> PayloadTooLarge:
    limit = f"{max_bytes / (1024 * 1024):g} MB"
    return PayloadTooLarge(f"The file is larger than {limit} (SEGBRIDGE_MAX_UPLOAD_MB); upload "
                           "a smaller file (split it), or ask the operator to raise "
                           "SEGBRIDGE_MAX_UPLOAD_MB.", details={"max_bytes": max_bytes})


async def store_upload(db: Database, home: Path, account_id: str, filename: str,
                       chunks: AsyncIterator[bytes], *, max_bytes: int | None = None,
                       declared_size: int | None = None) -> UploadPublic:
    """Stream an upload to disk and record it; PayloadTooLarge past ``max_bytes``."""
    if max_bytes is not None and declared_size is not None and declared_size > max_bytes:
        raise too_large(max_bytes)
    upload_id = new_id("upl")
    path = upload_path(home, account_id, upload_id)
    private_folders(home, path.parent)
    size = 0
    try:
        with _create_private(path) as handle:
            async for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise too_large(max_bytes)
                await asyncio.to_thread(handle.write, chunk)
    except BaseException:  # refused, or the client went away: no partial file stays
        path.unlink(missing_ok=True)
        raise
    with db.session() as session:
        session.add(Upload(id=upload_id, account_id=account_id, filename=filename[:300],
                           size=size))
    return UploadPublic(id=upload_id, filename=filename, size=size)


def private_folders(home: Path, folder: Path) -> None:
    """``<home>/uploads/<account>`` made (or narrowed) to 0700, each level."""
    uploads = home / "uploads"
    for level in (uploads, folder):
        level.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        if level.stat().st_mode & 0o777 != FOLDER_MODE:
            level.chmod(FOLDER_MODE)


def _create_private(path: Path) -> BinaryIO:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    return os.fdopen(descriptor, "wb")


def resolve_upload(db: Database, home: Path, account_id: str, upload_id: str) -> Path:
    with db.session() as session:
        upload = session.get(Upload, upload_id)
        if upload is None or upload.account_id != account_id:
            raise NotFound(f"No upload '{upload_id}' in your account; upload the file again.")
    return upload_path(home, account_id, upload_id)


def is_multipart(content_type: str) -> bool:
    media_type, _ = parse_options_header(content_type)
    return media_type.decode("latin-1").lower() == MULTIPART


def _refused(message: str) -> ValidationFailed:
    return ValidationFailed([FieldProblem("file", message)])


class MultipartFile:
    """A multipart/form-data body read as it streams: the first part with a file name is the
    file (``filename``; ``chunks()`` its bytes, nothing else). A body with no such part, with a
    second file, or cut short is refused (ValidationFailed: 422); other fields and the envelope
    are read and dropped, at most ``MULTIPART_OTHER_BYTES`` of them (PayloadTooLarge)."""

    def __init__(self, boundary: bytes, chunks: AsyncIterator[bytes]) -> None:
        self.filename = ""
        self._chunks = chunks
        self._field = b""
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self._files = 0
        self._other = 0
        self._pending: list[bytes] = []
        self._ended = False
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }
        self._parser = MultipartParser(boundary, callbacks)

    async def find_file(self) -> None:
        """Read up to the file part's data (its name is then known)."""
        while not self._files:
            if not await self._feed_next():
                raise _refused(f"The upload has no file in it: {HOW_TO_SEND}.")

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes, as the body streams (then the rest of the body is read)."""
        while True:
            while self._pending:
                yield self._pending.pop(0)
            if not await self._feed_next():
                break
        if not self._ended:
            raise _refused("The upload ended before its closing boundary (the multipart body "
                           "is cut short); send the whole file again.")

    async def _feed_next(self) -> bool:
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            return False
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise _refused(f"The multipart body cannot be read ({exc}); {HOW_TO_SEND}.") from exc
        return True

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]
        self._count_other(end - start)

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        name = self._field.lower()
        self._headers[name] = self._headers.get(name, b"") + data[start:end]
        self._count_other(end - start)

    def _header_end(self) -> None:
        self._field = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"filename" not in options:
            return  # a plain field: read and dropped
        if self._files:
            raise _refused("The upload has more than one file; send one file per upload.")
        self._files = 1
        self._in_file = True
        name = options[b"filename"].decode("utf-8", "replace").replace("\x00", "").strip()
        self.filename = name or "upload"

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._pending.append(data[start:end])
        else:
            self._count_other(end - start)

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self._ended = True

    def _count_other(self, size: int) -> None:
        self._other += size
        if self._other > MULTIPART_OTHER_BYTES:
            raise PayloadTooLarge(
                f"The form fields beside the file are over {MULTIPART_OTHER_BYTES // 1024} KB; "
                "send the file alone.", details={"max_bytes": MULTIPART_OTHER_BYTES})


async def open_multipart_file(content_type: str, chunks: AsyncIterator[bytes]) -> MultipartFile:
    """The file in a multipart/form-data body, its name read (ValidationFailed when the body
    has no boundary or no file part)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary", b"")
    if not boundary:
        raise _refused(f"The multipart body has no boundary in its Content-Type; {HOW_TO_SEND}.")
    upload = MultipartFile(boundary, chunks)
    await upload.find_file()
    return upload

"""Uploaded files for file exports, kept under ``<home>/uploads/<account>/<id>``.

An upload is at most ``SEGBRIDGE_MAX_UPLOAD_MB``: a larger declared size (Content-Length) is
refused before anything is written, and a body that grows past the limit while it streams is
cut off, its partial file deleted; a refused upload leaves no file and no row. Files are
created 0600 and their folders 0700 (only segbridge's user reads what was uploaded).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from segbridge.core.errors import NotFound, PayloadTooLarge
from segbridge.core.ids import new_id
from segbridge.flows.views import UploadPublic
from segbridge.storage.db import Database
from segbridge.storage.models import Upload

FILE_MODE = 0o600
FOLDER_MODE = 0o700


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

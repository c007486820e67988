"""Uploaded files for file exports, kept under ``<home>/uploads/<account>/<id>``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from segbridge.core.errors import NotFound
from segbridge.core.ids import new_id
from segbridge.storage.db import Database
from segbridge.storage.models import Upload


def upload_path(home: Path, account_id: str, upload_id: str) -> Path:
    return home / "uploads" / account_id / upload_id


async def store_upload(db: Database, home: Path, account_id: str, filename: str,
                       chunks: AsyncIterator[bytes]) -> dict[str, Any]:
    upload_id = new_id("upl")
    path = upload_path(home, account_id, upload_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with path.open("wb") as handle:
        async for chunk in chunks:
            size += len(chunk)
            await asyncio.to_thread(handle.write, chunk)
    with db.session() as session:
        session.add(Upload(id=upload_id, account_id=account_id, filename=filename[:300],
                           size=size))
    return {"id": upload_id, "filename": filename, "size": size}


def resolve_upload(db: Database, home: Path, account_id: str, upload_id: str) -> Path:
    with db.session() as session:
        upload = session.get(Upload, upload_id)
        if upload is None or upload.account_id != account_id:
            raise NotFound(f"No upload '{upload_id}' in your account; upload the file again.")
    return upload_path(home, account_id, upload_id)

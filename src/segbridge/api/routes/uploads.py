"""/api/v1/uploads: a file for a file export, streamed to disk (never held in memory).

The file is the raw body, or the file part of a multipart/form-data body (a browser form,
``curl -F file=@orders.csv``): only the file's bytes are stored, never the envelope.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from segbridge.accounts.roles import Permission, require
from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.flows.uploads import (
    MULTIPART_OTHER_BYTES,
    is_multipart,
    max_upload_bytes,
    open_multipart_file,
    store_upload,
    too_large,
)
from segbridge.flows.views import UploadPublic

router = APIRouter(tags=["uploads"])
BINARY = {"type": "string", "format": "binary"}
REQUEST_BODY = {"content": {
    "application/octet-stream": {"schema": BINARY},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {**BINARY, "description": "The file (its name is kept)."}}}},
}}


@router.post("/uploads", status_code=201, operation_id="upload_file",
             openapi_extra={"requestBody": REQUEST_BODY})
async def upload_file(request: Request, principal: CurrentPrincipal, runtime: RuntimeDep,
                      filename: str | None = None) -> UploadPublic:
    """Send the file as the raw body (its name in ``filename``), or as the file part of a
    multipart/form-data body (``curl -F file=@orders.csv``: the part's file name is kept
    unless ``filename`` is given). Use the returned id as ``export.upload``. 413 when the file
    is larger than ``SEGBRIDGE_MAX_UPLOAD_MB`` (nothing is kept); 422 for a multipart body
    without a file."""
    require(principal, Permission.UPLOAD)
    max_bytes = max_upload_bytes(runtime.settings.max_upload_mb)
    declared = _declared_size(request)
    if is_multipart(request.headers.get("content-type", "")):
        if declared is not None and declared > max_bytes + MULTIPART_OTHER_BYTES:
            raise too_large(max_bytes)  # the file alone cannot fit: refused before reading
        upload = await open_multipart_file(request.headers["content-type"], request.stream())
        return await store_upload(runtime.db, runtime.settings.home, principal.account_id,
                                  filename or upload.filename, upload.chunks(),
                                  max_bytes=max_bytes)
    return await store_upload(runtime.db, runtime.settings.home, principal.account_id,
                              filename or "upload", request.stream(), max_bytes=max_bytes,
                              declared_size=declared)


def _declared_size(request: Request) -> int | None:
    """The Content-Length the client sent (None: absent or not a number; the stream counts)."""
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None

"""/api/v1/uploads: a file for a file export, streamed to disk (never held in memory)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from segbridge.accounts.roles import Permission, require
from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.flows.uploads import max_upload_bytes, store_upload
from segbridge.flows.views import UploadPublic

router = APIRouter(tags=["uploads"])


@router.post("/uploads", status_code=201, operation_id="upload_file",
             openapi_extra={"requestBody": {"content": {"application/octet-stream": {
                 "schema": {"type": "string", "format": "binary"}}}}})
async def upload_file(request: Request, principal: CurrentPrincipal, runtime: RuntimeDep,
                      filename: str = "upload") -> UploadPublic:
    """Send the file as the raw body; use the returned id as ``export.upload``. 413 when it is
    larger than ``SEGBRIDGE_MAX_UPLOAD_MB`` (nothing is kept)."""
    require(principal, Permission.UPLOAD)
    return await store_upload(runtime.db, runtime.settings.home, principal.account_id,
                              filename, request.stream(),
                              max_bytes=max_upload_bytes(runtime.settings.max_upload_mb),
                              declared_size=_declared_size(request))


def _declared_size(request: Request) -> int | None:
    """The Content-Length the client sent (None: absent or not a number; the stream counts)."""
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None

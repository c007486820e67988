"""Webhooks: the receiving URL ``POST /hooks/<token>`` and a flow's listener under
``/api/v1/flows/{flow_id}/webhook`` (create, rotate, counts, secret, last payloads).

``POST /hooks/<token>`` takes no session nor API token: the URL's token names the listener
(looked up by its SHA-256) and the listener's verification decides. Answers: 200 once the
records are committed; 401 unverified (counted, never stored); 413 over the body limit (read
as a stream, stopped at the limit); 400 an unreadable body; 404 no listener at this URL; 503
the records could not be stored (send again). It is outside the API's OpenAPI document (it is
the senders' endpoint, not segbridge's API), and lean: it takes the bare request (FastAPI
parses nothing; the body is read here, as a stream), for a target of thousands of requests a
second in one process.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from segbridge.api.deps import CurrentPrincipal, RuntimeDep
from segbridge.api.schemas import ErrorResponse
from segbridge.apps.webhook.bodies import Unreadable, records_of
from segbridge.apps.webhook.verification import Unverified, verify
from segbridge.core.secrets import Secret
from segbridge.core.vault import VaultError
from segbridge.runs.webhook_delivery import WebhookDelivery
from segbridge.runs.webhook_intake import Listener, WebhookIntake
from segbridge.runs.webhook_listeners import (
    MAX_SECRET_CHARS,
    RECENT_PAYLOADS,
    WebhookListenerPublic,
    WebhookListeners,
    WebhookPayloadPublic,
)
from segbridge.runtime import Runtime

log = logging.getLogger(__name__)
MAX_TOKEN_CHARS = 100
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)}
router = APIRouter(prefix="/flows/{flow_id}/webhook", tags=["webhooks"], responses=ERRORS)
_LOCK = threading.Lock()
# a request's id, for the last payloads: unique per process start, cheap (no system call)
_PROCESS_MARK = secrets.token_hex(6)
_REQUEST_IDS = (f"whr_{_PROCESS_MARK}{n:x}" for n in itertools.count(1))


@dataclass(frozen=True)
class Webhooks:
    """The webhook parts of one server: the intake and the delivery of received records."""

    intake: WebhookIntake
    delivery: WebhookDelivery

    def close(self) -> None:
        self.delivery.stop()


def webhooks_of(app: Any, runtime: Runtime) -> Webhooks:
    """The app's webhook parts, made on first use."""
    made: Webhooks | None = getattr(app.state, "webhooks", None)
    if made is not None:
        return made
    with _LOCK:
        found: Webhooks | None = getattr(app.state, "webhooks", None)
        if found is None:
            delivery = WebhookDelivery(runtime.db, runtime.run_queue)
            found = Webhooks(WebhookIntake(runtime.db, runtime.vault, delivery), delivery)
            app.state.webhooks = found
        return found


def close_webhooks(app: Any) -> None:
    """Stop delivering received records (the server's end): the delivery thread ends."""
    webhooks: Webhooks | None = getattr(app.state, "webhooks", None)
    if webhooks is not None:
        webhooks.close()


def start_webhooks(app: Any) -> Webhooks:
    """Start delivering received records (the server does at start: records committed before
    a restart are delivered without waiting for a new request)."""
    webhooks = webhooks_of(app, app.state.runtime)
    webhooks.delivery.start()
    return webhooks


# ---- POST /hooks/<token> ------------------------------------------------------------------------

def _answer(status: int, code: str, message: str, **extra: Any) -> Response:
    body = {"ok": True, **extra} if status == 200 else \
        {"error": {"code": code, "message": message, "details": None}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


NO_LISTENER = ("No webhook listens at this URL: check it, or copy it again from the flow's page "
               "(a rotated URL stops working).")


async def receive_hook(request: Request) -> Response:
    token = request.path_params["token"]
    webhooks = webhooks_of(request.app, request.app.state.runtime)
    webhooks.delivery.start()
    try:
        listener = await webhooks.intake.listener(token) if len(token) <= MAX_TOKEN_CHARS \
            else None
    except VaultError:
        log.exception("a webhook's verification secret could not be decrypted")
        return _answer(503, "not_available", "This webhook cannot verify requests right now "
                                             "(its secret cannot be read); send it again later.")
    if listener is None:
        return _answer(404, "not_found", NO_LISTENER)
    body = await _body(request, listener.export.max_body_bytes)
    if body is None:
        await webhooks.intake.refused(listener, "too_large")
        limit = listener.export.max_body_bytes
        return _answer(413, "payload_too_large",
                       f"The body is over this webhook's limit of {limit:,} bytes: send fewer "
                       "records per request, or raise export.max_body_bytes in the flow.")
    return await _accept(webhooks.intake, listener, request, body)


async def _accept(intake: WebhookIntake, listener: Listener, request: Request,
                  body: bytes) -> Response:
    try:
        verify(listener.export.verification, listener.secret, request.headers, body,
               time.time())
        records = records_of(body, request.headers.get("content-type", ""))
    except Unverified as exc:
        await intake.refused(listener, "unverified")
        return _answer(401, "webhook_unverified", exc.reason)
    except Unreadable as exc:
        await intake.refused(listener, "unreadable")
        return _answer(400, "unreadable_body", exc.reason)
    request_id = next(_REQUEST_IDS)
    try:
        stored = await intake.store(listener, records, request_id)
    except Exception as exc:  # (its message may quote the records: not logged)
        log.error("webhook records of flow %s could not be stored: %s", listener.flow_id,
                  type(exc).__name__)
        return _answer(503, "not_stored", "The records could not be stored; send the request "
                                          "again.")
    if not stored:
        return _answer(404, "not_found", NO_LISTENER)
    return _answer(200, "", "", request_id=request_id, records=len(records))


async def _body(request: Request, limit: int) -> bytes | None:
    """The body, read as it comes; None once it is over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


receiver = APIRouter()
receiver.add_api_route("/hooks/{token}", receive_hook, methods=["POST"], include_in_schema=False,
                       name="receive_hook")


# ---- /api/v1/flows/{flow_id}/webhook ------------------------------------------------------------

class WebhookSecretUpdate(BaseModel):
    """PUT .../webhook/secret: the HMAC secret, Basic password or token (write-only); null
    removes it."""

    model_config = ConfigDict(extra="forbid")

    secret: Annotated[str, Field(min_length=1, max_length=MAX_SECRET_CHARS)] | None


def _listeners(runtime: Runtime) -> WebhookListeners:
    return WebhookListeners(runtime.db, runtime.vault, lambda: runtime.settings.base_url)


@router.post("", status_code=201, operation_id="create_webhook_listener")
def create_listener(flow_id: str, principal: CurrentPrincipal,
                    runtime: RuntimeDep) -> WebhookListenerPublic:
    """Give the webhook flow its URL; the answer's ``url`` is shown this once."""
    return _listeners(runtime).create(principal, flow_id)


@router.get("", operation_id="get_webhook_listener")
def get_listener(flow_id: str, principal: CurrentPrincipal,
                 runtime: RuntimeDep) -> WebhookListenerPublic:
    """Requests received, verified and rejected; records received and waiting."""
    return _listeners(runtime).get(principal, flow_id)


@router.post("/rotate", operation_id="rotate_webhook_listener")
def rotate_listener(flow_id: str, request: Request, principal: CurrentPrincipal,
                    runtime: RuntimeDep) -> WebhookListenerPublic:
    """A new URL (shown this once); the old one stops working at once."""
    public = _listeners(runtime).rotate(principal, flow_id)
    webhooks_of(request.app, runtime).intake.forget(flow_id)
    return public


@router.put("/secret", operation_id="set_webhook_secret")
def set_secret(flow_id: str, body: WebhookSecretUpdate, request: Request,
               principal: CurrentPrincipal, runtime: RuntimeDep) -> WebhookListenerPublic:
    """Set the verification secret (never answered back: ``has_secret``)."""
    secret = Secret(body.secret) if body.secret is not None else None
    public = _listeners(runtime).set_secret(principal, flow_id, secret)
    webhooks_of(request.app, runtime).intake.forget(flow_id)
    return public


@router.get("/payloads", operation_id="list_webhook_payloads")
def list_payloads(flow_id: str, principal: CurrentPrincipal, runtime: RuntimeDep,
                  limit: Annotated[int, Query(ge=1, le=RECENT_PAYLOADS)] = RECENT_PAYLOADS,
                  ) -> list[WebhookPayloadPublic]:
    """The last payloads received, newest first."""
    return _listeners(runtime).payloads(principal, flow_id, limit)

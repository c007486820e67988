"""The tracking API (``POST /v1/<call>``) and the source settings (``GET /v1/projects/...``).

Raw ASGI for speed: no request object, no per-event model; orjson; one pass per call.

Paths: ``/v1/<call>`` for the six calls, ``/v1/batch`` and ``/v1/import``, analytics.js's
one-letter paths (``/v1/t``, ``/v1/b``, ... see ``limits.SHORT_PATHS``), each with or without
a trailing slash.

Per request: the Basic write key's faults (if any are on: those of its source's account; for
no key or an unknown one, the implicit account's) -> Content-Type -> body read within the
limit -> gunzip -> JSON -> write key (Basic user name, else ``writeKey`` in the body; a body
key's account's faults apply here) -> the whole request validated and stamped -> a missing,
short or unknown key: 200 and drop ("segment") or 401 ("strict") -> drops, duplicates,
archive, Debugger -> ``200 {"success": true}``. Events are recorded for the source, so in its
account only. Errors have Segment's shape: ``{"code": ..., "message": ...}`` at the top level.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from segbridge.sandbox.calls import (
    PreparedRequest,
    TrackingError,
    prepare_batch,
    prepare_single,
)
from segbridge.sandbox.faults import FaultAction, Faults
from segbridge.sandbox.limits import (
    BATCH_PATHS,
    CALL_TYPES,
    MAX_BATCH_BYTES,
    MAX_CALL_BYTES,
    MIN_WRITE_KEY_CHARS,
    SHORT_PATHS,
)
from segbridge.sandbox.state import SandboxState
from segbridge.sandbox.store import Source
from segbridge.sandbox.timestamps import Receipt
from segbridge.sandbox.wire import (
    CORS_HEADERS,
    ClientGone,
    Headers,
    basic_write_key,
    check_content_type,
    error_body,
    headers_of,
    inflate,
    parse_json,
    read_body,
    send_bytes,
)

logger = logging.getLogger("segbridge.sandbox")
SUCCESS = b'{"success":true}'
_PREFLIGHT = [
    *CORS_HEADERS,
    (b"access-control-allow-methods", b"POST, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, content-type, content-encoding"),
    (b"access-control-max-age", b"86400"),
]
DRAIN_LIMIT = 2 * MAX_BATCH_BYTES
_UNAUTHORIZED = [(b"www-authenticate", b'Basic realm="segbridge sandbox"')]


@dataclass
class _Attempt:
    """What is known about a request so far (to count a refusal against its source)."""

    header_key: str | None
    source: Source | None = None
    faults: Faults | None = None  # the faults already applied


class _Answered(Exception):
    """The request was answered (or dropped) by a fault once its body was read."""


class TrackingAPI:
    """ASGI endpoint for ``/v1/{call}``."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        named = scope["path_params"]["call"]
        path = SHORT_PATHS.get(named, named)
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": _PREFLIGHT})
            await send({"type": "http.response.body", "body": b""})
            return
        if path not in CALL_TYPES and path not in BATCH_PATHS:
            await send_bytes(send, 404, error_body("not_found", f"no tracking call {named!r}"))
            return
        receiver = self.state.receiver
        receiver.requests += 1
        receiver.request_started()
        try:
            headers = headers_of(scope)
            header_key = basic_write_key(headers)
            attempt = _Attempt(header_key)
            known = self.state.store.by_write_key(header_key) if header_key else None
            attempt.faults = self.state.active_faults(known)
            if attempt.faults is not None and await self._fault(attempt.faults, receive, send):
                return
            await self._handle(path, headers, receive, send, attempt)
        finally:
            receiver.request_ended()

    async def _handle(
        self, path: str, headers: Headers, receive: Receive, send: Send, attempt: _Attempt
    ) -> None:
        try:
            await self._ingest(path, headers, receive, send, attempt)
        except _Answered:
            return
        except TrackingError as err:
            self._count_refusal(err, attempt)
            extra = _UNAUTHORIZED if err.status == 401 else []
            await send_bytes(send, err.status, error_body(err.code, err.message), headers=extra)
            return
        except ClientGone:
            return
        except OSError:
            logger.exception("the sandbox archive could not be written")
            body = error_body("archive_failed", "the event archive could not be written")
            await send_bytes(send, 500, body)
            return
        await send_bytes(send, 200, SUCCESS)

    def _count_refusal(self, err: TrackingError, attempt: _Attempt) -> None:
        if err.status == 400:
            self.state.receiver.rejected_requests += 1
        if err.code == "missing_write_key":
            self.state.receiver.missing_key_requests += 1
        if attempt.source is not None:
            self.state.debugger.feed(attempt.source.id).stats.rejected += 1

    async def _ingest(
        self, path: str, headers: Headers, receive: Receive, send: Send, attempt: _Attempt
    ) -> None:
        state = self.state
        strict = state.config.unknown_key_mode == "strict"
        header_key = attempt.header_key
        attempt.source = state.store.by_write_key(header_key) if header_key else None
        if strict and header_key and attempt.source is None:
            self._refuse_unknown(header_key)  # RudderStack checks the key before the body
        check_content_type(headers)
        limit = MAX_BATCH_BYTES if path in BATCH_PATHS else MAX_CALL_BYTES
        raw = await read_body(receive, headers, limit)
        if state.workers is not None and header_key and path in BATCH_PATHS:
            receipt = Receipt()
            encoding = headers.get(b"content-encoding", b"")
            reading = await state.workers.read(raw, encoding, path, limit, receipt.at, not strict)
            reading.check_readable()
            key = await self._identify(header_key, reading.body_key, attempt, receive, send)
            prepared = reading.calls()
        else:
            data = inflate(raw, headers, limit)
            body = parse_json(data)
            key = await self._identify(header_key, _body_key(body), attempt, receive, send)
            receipt = Receipt()
            prepared = self._prepare(path, body, receipt, len(data), lenient=not strict)
        if attempt.source is None:
            self._drop_unknown(key, prepared)
            return
        await state.recorder.record(attempt.source, prepared, receipt.iso)

    async def _identify(
        self,
        header_key: str | None,
        body_key: str | None,
        attempt: _Attempt,
        receive: Receive,
        send: Send,
    ) -> str:
        """The request's write key and (in ``attempt``) source, once the body is read; a
        refusal raised, or ``_Answered`` when a fault of the body key's account answered."""
        state = self.state
        strict = state.config.unknown_key_mode == "strict"
        key = self._write_key(header_key, body_key, strict)
        attempt.source = source = state.store.by_write_key(key) if key else None
        if source is None and strict:
            self._refuse_unknown(key)
        faults = state.active_faults(source)
        late = faults is not None and faults is not attempt.faults  # a key in the body
        if late and faults and await self._fault(faults, receive, send, body_read=True):
            raise _Answered
        return key

    def _drop_unknown(self, key: str, prepared: PreparedRequest) -> None:
        """Segment answers 200 for a missing, short or unknown key and keeps nothing."""
        events = prepared.over_limit or len(prepared)
        if key:
            self.state.receiver.unknown_key(key, events)
        else:
            self.state.receiver.missing_key_requests += 1

    def _refuse_unknown(self, key: str) -> None:
        if len(key) < MIN_WRITE_KEY_CHARS:
            raise TrackingError(401, "missing_write_key", "the write key is too short")
        self.state.receiver.unknown_key(key, 0)
        raise TrackingError(401, "invalid_write_key", "Invalid write key")

    @staticmethod
    def _prepare(
        path: str, body: object, receipt: Receipt, size: int, *, lenient: bool
    ) -> PreparedRequest:
        if path in BATCH_PATHS:
            return prepare_batch(body, receipt, size, lenient=lenient)
        return prepare_single(body, path, receipt, lenient=lenient)

    @staticmethod
    def _write_key(header_key: str | None, body_key: str | None, strict: bool) -> str:
        """The request's write key; "" (dropped, as Segment does) or a 401 in strict mode
        for a missing or too short one."""
        key = header_key or body_key
        if key and len(key) >= MIN_WRITE_KEY_CHARS:
            return key
        if not strict:
            return key or ""
        message = "a write key is required (HTTP Basic user name or writeKey)"
        if key:
            message = "the write key is too short"
        raise TrackingError(401, "missing_write_key", message)

    async def _fault(
        self, faults: Faults, receive: Receive, send: Send, *, body_read: bool = False
    ) -> bool:
        """Apply ``faults``; True when the request was answered (or dropped)."""
        latency = faults.settings.latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)
        action = faults.decide()
        if action is None:
            return False
        if action.kind == "drop":
            await drop_connection(receive, send, body_read=body_read)
            return True
        await send_bytes(send, action.status or 503, *_fault_answer(action))
        return True


def _body_key(body: object) -> str | None:
    """The ``writeKey`` of a JSON object body, when it is a string."""
    key = body.get("writeKey") if isinstance(body, dict) else None
    return key if isinstance(key, str) else None


def _fault_answer(action: FaultAction) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    messages = {
        "500": "injected fault: internal server error",
        "503": "injected fault: service unavailable",
        "429": "injected fault: too many requests",
        "down": "injected fault: the receiver is down",
    }
    headers: list[tuple[bytes, bytes]] = []
    if action.retry_after is not None:
        headers.append((b"retry-after", str(action.retry_after).encode()))
    if action.kind == "429":
        headers.append((b"x-ratelimit-reset", str(action.retry_after).encode()))
    body = error_body(f"fault_{action.kind}", messages[action.kind])
    return body, b"application/json", headers


async def drop_connection(receive: Receive, send: Send, *, body_read: bool = False) -> None:
    """Break the connection before any answer arrives: the client sees a connection error.

    ASGI has no message that closes a connection; what the specification gives is this: a
    response started and never finished makes the server close the connection (uvicorn logs
    one error line for it). The client reads a status line, then the connection closes before
    the announced body, which HTTP clients report as a broken connection (httpx
    ``RemoteProtocolError``, requests ``ChunkedEncodingError``) and retry as any network
    failure. The status is 503, so that even a client that stops at the headers retries.
    """
    read = 0
    # read the request first (unless read already): the client is left waiting for an answer
    while not body_read and read <= DRAIN_LIMIT:
        message = await receive()
        read += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers = [(b"content-length", b"64"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})


KNOWS_EVERY_KEY = "X-Receiver-Knows-Every-Key"


def settings_endpoint(state: SandboxState) -> Callable[[Request], Awaitable[Response]]:
    """``GET /v1/projects/{write_key}/settings``: what analytics.js loads from Segment's CDN,
    pointing it back at this receiver (``apiHost`` and ``protocol`` of the request)."""

    async def project_settings(request: Request) -> Response:
        key = request.path_params["write_key"]
        if state.store.by_write_key(key) is None:
            # This receiver knows every key of its sources: an unknown one is wrong (Segment
            # cannot say so: a valid key of some server-side sources answers 404 there too).
            return PlainTextResponse("Invalid path or write key provided.", 404,
                                     headers={**_cors(), KNOWS_EVERY_KEY: "true"})
        api_host = f"{request.url.netloc}{request.scope.get('root_path', '')}/v1"
        segment_io = {"apiKey": key, "apiHost": api_host, "protocol": request.url.scheme}
        body = {
            "integrations": {"Segment.io": segment_io},
            "plan": {"track": {"__default": {"enabled": True}}},
            # analytics.js reports its own errors to Segment unless told not to: nothing
            # from a page using the local Segment should leave the machine
            "metrics": {"sampleRate": 0, "host": api_host},
        }
        return Response(orjson.dumps(body), media_type="application/json", headers=_cors())

    return project_settings


def _cors() -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in CORS_HEADERS}

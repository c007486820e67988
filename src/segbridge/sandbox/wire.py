"""Low-level HTTP for the tracking API: headers, bounded body reading, gzip, JSON, answers.

The tracking endpoints are raw ASGI for speed. A body is read chunk by chunk and refused as
soon as it passes the limit (by ``Content-Length`` first, else by counting), so a 10 MB body
is never held in memory; gzip is inflated with an output cap for the same reason.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Iterable

import orjson
from starlette.types import Receive, Scope, Send

from segbridge.sandbox.calls import TrackingError, bad_request
from segbridge.sandbox.limits import GZIP_SLACK_BYTES

Headers = dict[bytes, bytes]
_GZIP_MAGIC = b"\x1f\x8b"
MAX_GZIP_MEMBERS = 64  # (clients send one; each member costs a copy of the body's rest)
_JSON_TYPES = (b"application/json", b"text/plain", b"")  # analytics.js sends text/plain
CORS_HEADERS = [(b"access-control-allow-origin", b"*")]


class ClientGone(Exception):
    """The client disconnected before the body arrived."""


def headers_of(scope: Scope) -> Headers:
    return {name: value for name, value in scope["headers"]}


def check_content_type(headers: Headers) -> None:
    media = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if media not in _JSON_TYPES and not media.endswith(b"+json"):
        raise bad_request("unsupported_content_type", "Content-Type must be application/json")


def basic_write_key(headers: Headers) -> str | None:
    """The user name of HTTP Basic credentials (``base64("<writeKey>:")``), if any."""
    scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[0]


def _too_large(limit: int) -> TrackingError:
    return bad_request("too_large", f"the request is over {limit:,} bytes")


async def read_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    """The raw body, or a 400 as soon as it is known to be over ``limit`` bytes of JSON.

    A gzip body is allowed ``GZIP_SLACK_BYTES`` more: gzip never grows JSON by more.
    """
    most = limit + GZIP_SLACK_BYTES
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > most:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > most:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def inflate(raw: bytes, headers: Headers, limit: int) -> bytes:
    """The JSON bytes: ``raw``, or gunzipped (by header or magic bytes); at most ``limit``."""
    encoding = headers.get(b"content-encoding", b"").strip().lower()
    if encoding not in (b"", b"identity", b"gzip", b"x-gzip"):
        raise bad_request("unsupported_encoding", "Content-Encoding must be gzip or absent")
    if encoding in (b"gzip", b"x-gzip") or raw.startswith(_GZIP_MAGIC):
        return _gunzip(raw, limit)
    if len(raw) > limit:
        raise _too_large(limit)
    return raw


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Every member of a gzip body, as one (RFC 1952 allows several; Go's reader, which
    Segment's edge is written in, reads them all); at most ``limit`` bytes in all. Bytes after
    the last member that are not another member make the body invalid (they were ignored)."""
    data = b""
    rest = raw
    for _member in range(MAX_GZIP_MEMBERS):
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            data += inflater.decompress(rest, limit + 1 - len(data))
        except zlib.error as exc:
            raise bad_request("invalid_gzip", "the body is not valid gzip") from exc
        if len(data) > limit:
            raise _too_large(limit)
        if not inflater.eof:
            raise bad_request("invalid_gzip", "the gzip body is truncated")
        rest = inflater.unused_data  # (a copy of the rest: hence the cap on members)
        if not rest:
            return data
    raise bad_request("invalid_gzip", f"the gzip body has more than {MAX_GZIP_MEMBERS} "
                      "members; send one")


# A JSON string escape: a surrogate pair (kept), half of one alone (becomes U+FFFD), or any
# other escape (kept; consumed whole, so an escaped backslash never starts one)
_ESCAPES = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
                      rb"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\\.", re.DOTALL)


def parse_json(data: bytes) -> object:
    """The body's JSON. Half of a surrogate pair escaped alone (``"\\ud83d"``: what a browser's
    ``JSON.stringify`` writes for text cut inside an emoji) is read as U+FFFD, as Go's
    decoder (Segment's edge) reads it, not as a body that is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if b"\\u" in data:
            mended = _ESCAPES.sub(_lone_half_replaced, data)
            if mended != data:
                try:
                    return orjson.loads(mended)
                except orjson.JSONDecodeError:
                    pass
        reason = str(exc).split(":", 1)[0][:80]
        raise bad_request("invalid_json", f"the body is not valid JSON ({reason})") from exc


def _lone_half_replaced(escape: re.Match[bytes]) -> bytes:
    text = escape.group(0)
    return b"\\ufffd" if len(text) == 6 else text  # (a pair is 12 bytes, others 2)


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *CORS_HEADERS,
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_body(code: str, message: str) -> bytes:
    """Segment's error shape: ``code`` and ``message`` at the top level (the official clients
    read ``body["code"]`` and ``body["message"]``; a nested shape makes some of them crash)."""
    return orjson.dumps({"success": False, "code": code, "message": message})

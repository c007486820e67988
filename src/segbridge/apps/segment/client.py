"""The Segment Tracking API client: auth, messageId, sentAt, gzip, and failure classification.

Every HTTP status and transport failure is mapped to the exception tree here and only here:
any 2xx is success; 429 and 5xx are retriable (honouring Retry-After); other 4xx are fatal;
network failures are retriable and named by cause (dns, refused, tls, timeout, dropped).
Error messages never carry header values, write keys or query strings.
"""

from __future__ import annotations

import base64
import functools
import gzip
import ssl
import uuid
from typing import Any

import httpx
import orjson

import segbridge
from segbridge.apps.segment.endpoints import Endpoint
from segbridge.core.clock import isoformat, utcnow
from segbridge.core.errors import ApplicationError, FatalError, RetriableError
from segbridge.core.secrets import Secret

LIBRARY = {"name": "segbridge", "version": segbridge.__version__}

GZIP_MIN_BYTES = 1024


def basic_auth(write_key: Secret) -> str:
    token = base64.b64encode(f"{write_key.reveal()}:".encode()).decode("ascii")
    return f"Basic {token}"


def new_message_id() -> str:
    return f"segbridge-{uuid.uuid4()}"


def stamp(call: dict[str, Any]) -> dict[str, Any]:
    """Give a call what every call needs: messageId, sentAt and context.library."""
    call.setdefault("messageId", new_message_id())
    call["sentAt"] = isoformat(utcnow())
    context = call.setdefault("context", {})
    context.setdefault("library", LIBRARY)
    return call


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings of requests to a receiver, made once per process: certificates and
    host names verified against certifi's CA bundle, exactly as httpx's default. httpx builds
    a new one for every ``httpx.Client`` by parsing the bundle (about 14 ms, two thirds of a
    Test connection); an ``SSLContext`` is safe to share between clients and threads."""
    return httpx.create_ssl_context(trust_env=False)


class TrackingClient:
    """Sends calls to one endpoint with one write key, over an injected httpx client."""

    def __init__(self, endpoint: Endpoint, write_key: Secret, http: httpx.Client) -> None:
        self.endpoint = endpoint
        self._write_key = write_key
        self._http = http

    def send(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        """POST one call or a batch; return the 2xx response or raise a classified error."""
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json", "Authorization": basic_auth(self._write_key)}
        if len(body) >= GZIP_MIN_BYTES:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        try:
            response = self._http.post(self.endpoint.url(path), content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise classify_transport_error(exc, self.endpoint.url(path)) from None
        raise_for_status(response)
        return response

    def fetch_source_settings(self) -> httpx.Response:
        """GET the source-settings document for this write key (answers 404 if unknown)."""
        url = self.endpoint.settings_url(self._write_key.reveal())
        try:
            return self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise classify_transport_error(exc, self.endpoint.settings_base) from None


STATUS_CAUSES: dict[int, tuple[str, str]] = {
    400: ("http_400", "The receiver refused the call as invalid (400): the JSON or a required "
                      "field was wrong, or the write key was empty or too short."),
    401: ("write_key_rejected", "The write key was rejected (401). Copy it again from Segment: "
                                "Connections > Sources > your source > Settings > API keys."),
    403: ("write_key_rejected", "The write key was rejected (403): it is not allowed to send to "
                                "this source. Check the key and the source."),
    404: ("wrong_endpoint", "The endpoint answered 404: this URL is not a Segment Tracking API. "
                            "Check the region or the custom endpoint URL."),
    413: ("too_large", "The receiver refused the request as too large (413)."),
    429: ("rate_limited", "The receiver is rate limiting this write key (429); segbridge will "
                          "slow down and retry."),
}


def raise_for_status(response: httpx.Response) -> None:
    """The one place that turns an HTTP status into success or an error."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 429:
        raise RetriableError(
            STATUS_CAUSES[429][1], cause="rate_limited", status=status,
            retry_after=retry_after_seconds(response),
        )
    if status >= 500:
        raise RetriableError(
            f"The receiver had a server error ({status}); segbridge will retry later.",
            cause="server_error", status=status, retry_after=retry_after_seconds(response),
        )
    cause, message = STATUS_CAUSES.get(
        status, ("http_error", f"The receiver answered {status}, which segbridge does not expect.")
    )
    reason = receiver_reason(response)
    if reason:
        message = f"{message} The receiver said: {reason}"
    raise FatalError(message, cause=cause, status=status)


MAX_REASON_CHARS = 200


def receiver_reason(response: httpx.Response) -> str | None:
    """The receiver's own words for a refusal, from Segment's error shape (``code`` and
    ``message`` at the top level; a nested ``error`` object as older receivers sent it);
    printable text only, at most ``MAX_REASON_CHARS``; None when the body has none."""
    try:
        body = orjson.loads(response.content[:4096])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("error"), dict) and "message" not in body:
        body = body["error"]
    message, code = body.get("message"), body.get("code")
    if not isinstance(message, str) or not message.strip():
        return None
    text = f"{code}: {message}" if isinstance(code, str) and code else message
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text[:MAX_REASON_CHARS]


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify_transport_error(exc: httpx.HTTPError, url: str) -> ApplicationError:
    """Name a network failure by its cause, in words a user can act on."""
    host = httpx.URL(url).host
    if isinstance(exc, httpx.TimeoutException):
        return RetriableError(
            f"No answer from {host} in time (timeout). The receiver may be overloaded or a "
            "firewall may be dropping traffic: check that the endpoint is the right one and "
            "reachable from this server, then test again.", cause="timeout")
    chain = _causes(exc)
    text = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, ssl.SSLError) for e in chain) or "ssl" in text or "tls" in text:
        return FatalError(
            f"The TLS handshake with {host} failed. Check that the URL's scheme (https/http) "
            "matches the receiver and that its certificate is valid.", cause="tls")
    if "name or service not known" in text or "nodename nor servname" in text or (
        "name resolution" in text or "getaddrinfo" in text or "errno -2" in text
        or "errno -3" in text or "errno -5" in text
    ):
        return RetriableError(
            f"The host {host} could not be found (DNS). Check the endpoint URL and this "
            "server's DNS.", cause="dns")
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return RetriableError(
            f"{host} refused the connection: nothing is listening at that address and port. "
            "Check the endpoint URL and that the receiver is running.", cause="refused")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return RetriableError(
            f"{host} closed the connection without an answer; segbridge will retry.",
            cause="dropped")
    return RetriableError(
        f"Could not reach {host} ({type(exc).__name__}).", cause="network")


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain

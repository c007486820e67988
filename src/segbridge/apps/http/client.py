"""Requests to an HTTP connection's API: authentication, a request rate, and every answer
turned into success or an error in one place.

    2xx                      success (the answer is streamed to the caller)
    401 (OAuth 2)            the token is fetched again and the request made once more
    429, 5xx                 RetriableError (Retry-After kept): the page is tried again later
    network failures         RetriableError named by cause (dns, refused, timeout, dropped),
                             TLS a FatalError: ``segment.client.classify_transport_error``
    401, 403, 404, 3xx, 4xx  FatalError (cause http_401, http_403, http_404, redirect, ...)
    an address the policy    NotAllowedHere (checked for each URL, and again at connect time
    refuses, or segbridge's  by ``guard.GuardedBackend``)
    own server

Every URL shown in a message goes through the connection's ``Masker`` first.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from segbridge.apps.http.connection import (
    BASIC,
    BEARER,
    KEY_HEADER,
    KEY_QUERY,
    OAUTH,
    HttpConnection,
)
from segbridge.apps.http.guard import GuardedTransport, check_url
from segbridge.apps.http.masking import Masker
from segbridge.apps.segment.client import classify_transport_error, retry_after_seconds
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import ApplicationError, FatalError, RetriableError
from segbridge.core.secrets import Secret

USER_AGENT = "segbridge-http-export"
TOKEN_EARLY_SECONDS = 30.0  # an OAuth token is fetched again this long before it expires
ERROR_EXCERPT_BYTES = 300


def masker_for(connection: HttpConnection) -> Masker:
    key_param = connection.api_key_name if connection.auth == KEY_QUERY else None
    return Masker(connection.secrets.values(), key_param, connection.username)


class RateLimit:
    """At most ``per_second`` requests a second, one after another, from any thread (a
    lookup asks from several): each caller reserves its turn under a lock, then waits for it."""

    def __init__(self, per_second: float | None, sleep: Callable[[float], None]) -> None:
        self._interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0
        self._sleep = sleep
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            turn = max(now, self._next)
            self._next = turn + self._interval
        if turn > now:
            self._sleep(turn - now)


class ApiClient:
    """One connection's requests, over one httpx client (closed with ``close``)."""

    def __init__(self, connection: HttpConnection, *, timeout: float,
                 policy: AccessPolicy | None = None, rate: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.connection = connection
        self.mask = masker_for(connection).mask
        self._policy = policy
        transport = GuardedTransport(policy) if policy is not None else None
        self._http = httpx.Client(transport=transport, timeout=timeout, trust_env=False,
                                  follow_redirects=False)
        rates = [r for r in (rate, connection.requests_per_second) if r]
        self._rate = RateLimit(min(rates) if rates else None, sleep)
        self._token: tuple[Secret, float] | None = None  # OAuth 2: the token, its end
        self._token_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def shown(self, url: httpx.URL | str) -> str:
        """A URL as messages show it: no user, no fragment, secrets masked."""
        parts = httpx.URL(str(url))
        return self.mask(str(parts.copy_with(username=None, password=None, fragment=None)))

    @contextmanager
    def open(self, method: str, url: str, params: dict[str, str] | None = None,
             body: Any = None) -> Iterator[httpx.Response]:
        """One request, its 2xx answer streamed (the body not read yet); else an error."""
        target = httpx.URL(url).copy_merge_params(params or {})
        if self._policy is not None:
            check_url(self._policy, str(target), field="export.connection")
        response = self._send(method, target, body)
        if response.status_code == 401 and self.connection.auth == OAUTH:
            response.close()
            self._token = None  # expired or revoked early: fetch a new one, once
            response = self._send(method, target, body)
        try:
            problem = status_error(response, self.shown(target), self._excerpt)
            if problem is not None:
                raise problem
            yield response
        finally:
            response.close()

    def _send(self, method: str, target: httpx.URL, body: Any) -> httpx.Response:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json, */*",
                   **dict(self.connection.headers)}
        target = self._authenticate(target, headers)
        self._rate.wait()
        request = self._http.build_request(method, target, headers=headers, json=body)
        try:
            return self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise classify_transport_error(exc, str(target)) from None

    def _authenticate(self, target: httpx.URL, headers: dict[str, str]) -> httpx.URL:
        connection = self.connection
        auth = connection.auth
        if auth == BASIC:
            pair = f"{connection.username}:{connection.secret('password').reveal()}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif auth == BEARER:
            headers["Authorization"] = f"Bearer {connection.secret('token').reveal()}"
        elif auth == KEY_HEADER:
            headers[connection.api_key_name] = connection.secret("api_key").reveal()
        elif auth == KEY_QUERY:
            return target.copy_set_param(connection.api_key_name,
                                         connection.secret("api_key").reveal())
        elif auth == OAUTH:
            headers["Authorization"] = f"Bearer {self._access_token().reveal()}"
        return target

    def _access_token(self) -> Secret:
        """The OAuth 2 access token, fetched when there is none or it is about to expire
        (once, however many threads ask at that moment)."""
        with self._token_lock:
            if self._token is not None and time.monotonic() < self._token[1]:
                return self._token[0]
            self._token = self._fetch_token()
            return self._token[0]

    def _fetch_token(self) -> tuple[Secret, float]:
        connection = self.connection
        form = {"grant_type": "client_credentials", "client_id": connection.client_id,
                "client_secret": connection.secret("client_secret").reveal()}
        if connection.scope:
            form["scope"] = connection.scope
        url = connection.token_url
        if self._policy is not None:
            check_url(self._policy, url, field="settings.token_url")
        self._rate.wait()
        try:
            response = self._http.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise classify_transport_error(exc, url) from None
        return self._token_from(response)

    def _token_from(self, response: httpx.Response) -> tuple[Secret, float]:
        where = self.shown(self.connection.token_url)
        if response.status_code in (400, 401, 403):
            raise FatalError(f"The OAuth token URL {where} refused the client credentials "
                             f"({response.status_code}). Check the OAuth client id, client "
                             "secret and scope.", cause="oauth_rejected",
                             status=response.status_code)
        problem = status_error(response, where, self._excerpt)
        if problem is not None:
            raise problem
        try:
            answer = response.json()
            token = str(answer["access_token"])
            lifetime = float(answer.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise FatalError(f"The OAuth token URL {where} answered without an access_token. "
                             "Check that the token URL is the OAuth 2 token endpoint.",
                             cause="oauth_rejected") from None
        early = min(TOKEN_EARLY_SECONDS, lifetime / 2)
        return Secret(token), time.monotonic() + lifetime - early

    def _excerpt(self, response: httpx.Response) -> str:
        """The start of an error answer's body, masked (an API may echo a key back)."""
        data = b""
        try:
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) >= ERROR_EXCERPT_BYTES:
                    break
        except httpx.HTTPError:
            pass
        text = " ".join(data[:ERROR_EXCERPT_BYTES].decode("utf-8", "replace").split())
        return self.mask(text)


def status_error(response: httpx.Response, shown: str,
                 excerpt: Callable[[httpx.Response], str]) -> ApplicationError | None:
    """The one place an HTTP status becomes an error (None: a 2xx)."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    if status == 429 or status >= 500:
        kind = "is rate limiting segbridge" if status == 429 else "had a server error"
        return RetriableError(f"The API {kind} ({status}) at {shown}.",
                              cause="rate_limited" if status == 429 else "server_error",
                              status=status, retry_after=retry_after_seconds(response))
    if 300 <= status < 400:
        return FatalError(f"The API answered {shown} with a redirect ({status}); segbridge "
                          "does not follow redirects. Use the address it redirects to in the "
                          "connection's base URL.", cause="redirect", status=status)
    return FatalError(_refusal(status, shown, excerpt(response)), cause=f"http_{status}",
                      status=status)


def _refusal(status: int, shown: str, said: str) -> str:
    body = f" It said: {said}" if said else ""
    if status == 401:
        return (f"The API refused segbridge's credentials (401) at {shown}. Check the "
                f"connection's authentication: its kind and the key, token or password.{body}")
    if status == 403:
        return (f"The API answered 403 (forbidden) at {shown}: the credentials are known but "
                f"may not read this. Check the key's or token's permissions.{body}")
    if status == 404:
        return (f"The API answered 404 (not found) at {shown}. Check the connection's base "
                f"URL and the path.{body}")
    return f"The API refused the request ({status}) at {shown}. Check the request.{body}"

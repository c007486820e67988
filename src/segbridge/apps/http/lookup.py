"""HTTP lookups: one request per record's key to an HTTP API connection, several at once.

A lookup step with an HTTP API connection names a ``request`` whose path, query values and
body strings hold ``{placeholder}``s, each given a record's value through ``params``
(placeholder -> record field), and where the answer's object is (``result``)::

    lookup:
      name: customer
      connection: CRM API
      request: {method: GET, path: "/customers/{id}", query: {expand: "{region}"}}
      params: {id: customer_id, region: region}
      result: data                 # $ (the default): the whole answer

Values are URL-encoded in the path and the query; in the body a string that is only a
placeholder takes the value as it is (a number stays a number). The engine gives
``find_many`` the distinct keys its cache lacks; they are asked at once, up to the
connection's concurrency level (``CONCURRENCY_KEY``, set by the run from the connection).

    2xx        the object at ``result`` (a list: its first item; null, [] or missing: nothing)
    404        nothing found (the step's ``on_missing`` applies)
    429, 5xx,  asked again (Retry-After honoured) up to ``MAX_ATTEMPTS`` times, then a
    network     RetriableError: the engine tries the batch again, then fails the run; the
               keys already answered are kept and not asked again
    other 4xx  FatalError (the request is wrong), named with its masked URL

Every URL is checked against the access policy (and again at connect time by the HTTP
client's guard); every message goes through the connection's masker.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import orjson

from segbridge.apps.base import LookupKey, LookupRequest, LookupRow
from segbridge.apps.http.client import ApiClient
from segbridge.apps.http.connection import connection_targets, parse_connection
from segbridge.apps.http.guard import check_url
from segbridge.core.errors import (
    ApplicationError,
    FatalError,
    FieldProblem,
    NotAllowedHere,
    RetriableError,
)
from segbridge.sinks.contracts import RetryPolicy

CONCURRENCY_KEY = "connection_concurrency"  # the run puts the connection's level here
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64  # threads of one lookup, whatever the connection's level
KEYS_PER_CALL = 200  # keys the engine gives ``find_many`` at once
MAX_ATTEMPTS = 3  # tries of one key before the batch fails as retriable
TIMEOUT_SECONDS = 30.0
MAX_ANSWER_BYTES = 8 * 1024 * 1024
METHODS = ("GET", "POST")
SQL_FIELDS = ("query", "key_column")  # the Database form, which HTTP lookups do not read
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def placeholders(request: Mapping[str, Any]) -> list[str]:
    """The ``{name}``s of a lookup request (path, query values, body strings), in order."""
    found: list[str] = []
    texts = [request.get("path"), *dict(request.get("query") or {}).values()]
    texts += _strings(request.get("body"))
    for text in texts:
        if isinstance(text, str):
            found += _PLACEHOLDER.findall(text)
    return list(dict.fromkeys(found))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def lookup_problems(lookup: Mapping[str, Any], field: str) -> list[FieldProblem]:
    """An HTTP lookup's request against its ``params`` (and no SQL fields)."""
    problems = [FieldProblem(f"{field}.{name}", f"an HTTP API lookup sends a request, it has "
                             f"no {name}; write request: {{path: '/customers/{{id}}'}} "
                             "instead") for name in SQL_FIELDS if lookup.get(name) is not None]
    request = lookup.get("request")
    params = lookup.get("params")
    if not isinstance(request, Mapping):
        return [*problems, FieldProblem(f"{field}.request", "an HTTP API lookup needs a "
                                        "request, e.g. {method: GET, path: '/customers/{id}'}")]
    if not isinstance(params, Mapping):
        return problems
    used = placeholders(request)
    problems += [FieldProblem(f"{field}.params", f"the request has no {{{name}}}; use it in "
                              "the path, the query or the body, or remove it")
                 for name in params if name not in used]
    problems += [FieldProblem(f"{field}.request", f"{{{name}}} has no value; add {name}: <a "
                              "record field> to params") for name in used if name not in params]
    if request.get("body") is not None and request.get("method", "GET") == "GET":
        problems.append(FieldProblem(f"{field}.request.body", "a GET request has no body; "
                                     "use method: POST, or move the values to the query"))
    return problems


def fill_text(text: str, values: Mapping[str, Any], *, in_path: bool = False) -> str:
    """``text`` with each ``{name}`` replaced by its value (URL-encoded in a path)."""
    def value(match: re.Match[str]) -> str:
        shown = _as_text(values[match.group(1)])
        if not in_path:
            return shown
        return "%2E" * len(shown) if shown in (".", "..") else quote(shown, safe="")
    return _PLACEHOLDER.sub(value, text)


def fill_body(body: Any, values: Mapping[str, Any]) -> Any:
    """The body with its placeholders filled; a string that is one placeholder keeps the
    value's own type."""
    if isinstance(body, str):
        whole = _PLACEHOLDER.fullmatch(body)
        return values[whole.group(1)] if whole else fill_text(body, values)
    if isinstance(body, Mapping):
        return {name: fill_body(item, values) for name, item in body.items()}
    if isinstance(body, list):
        return [fill_body(item, values) for item in body]
    return body


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def result_at(answer: Any, path: str) -> LookupRow | None:
    """The object at ``path`` (``$``, ``data``, ``$.data.customer``) of an answer; a list
    gives its first item; nothing there (or null, or []) gives None."""
    found = answer
    steps = [part for part in path.strip().removeprefix("$").split(".") if part]
    for part in steps:
        found = found.get(part) if isinstance(found, Mapping) else None
    if isinstance(found, list):
        found = found[0] if found else None
    if found is None or isinstance(found, Mapping):
        return found
    where = path or "$"
    raise FatalError(f"The lookup's answer holds a {type(found).__name__} at {where}, not an "
                     "object. Set result to the path of the object (e.g. data), or $ for the "
                     "whole answer.", cause="answer")


class HttpLookup:
    """A lookup step's request, one per key, asked ``concurrency`` at a time."""

    batch_size = KEYS_PER_CALL

    def __init__(self, request: LookupRequest, *, timeout: float = TIMEOUT_SECONDS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._field = request.field
        where = f"{request.field}.connection"
        for _setting, url in connection_targets(request.connection.values).urls:
            check_url(request.policy, url, field=where)
        try:
            self._connection = parse_connection(request.connection)
        except ApplicationError as exc:
            raise FatalError(exc.message, cause="config") from None
        self._policy = request.policy
        self._client = ApiClient(self._connection, timeout=timeout, policy=request.policy)
        self._sleep = sleep
        self._retry = RetryPolicy()
        self.params = request.params
        asked = dict(request.lookup.get("request") or {})
        self._method = str(asked.get("method") or "GET")
        self._path = str(asked.get("path") or "/")
        self._query = {str(k): _as_text(v) for k, v in dict(asked.get("query") or {}).items()}
        self._body = asked.get("body")
        self._result = str(request.lookup.get("result") or "$")
        level = int(request.lookup.get(CONCURRENCY_KEY) or DEFAULT_CONCURRENCY)
        self.concurrency = max(1, min(level, MAX_CONCURRENCY))
        self._pool: ThreadPoolExecutor | None = None
        self._answered: dict[LookupKey, LookupRow | None] = {}  # of a batch that failed
        self._lock = threading.Lock()
        self._warmed = False

    def find_many(self, keys: Sequence[LookupKey]) -> dict[LookupKey, LookupRow | None]:
        wanted = [key for key in keys if key not in self._answered]
        if wanted and not self._warmed:  # the first alone: an OAuth token is fetched once
            self._keep(wanted[0], self._ask(wanted[0]))
            self._warmed = True
            wanted = wanted[1:]
        if wanted:
            self._ask_all(wanted)
        found = {key: self._answered.get(key) for key in keys}
        self._answered = {}
        return found

    def _ask_all(self, keys: Sequence[LookupKey]) -> None:
        """Every key asked, ``concurrency`` at a time; those answered are kept even when
        another fails (then the first failure is raised, after all have ended)."""
        pool = self._threads()
        futures = [(key, pool.submit(self._ask, key)) for key in keys]
        failure: BaseException | None = None
        for key, future in futures:
            try:
                self._keep(key, future.result())
            except ApplicationError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _keep(self, key: LookupKey, row: LookupRow | None) -> None:
        with self._lock:
            self._answered[key] = row

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency,
                                            thread_name_prefix="http-lookup")
        return self._pool

    def _ask(self, key: LookupKey) -> LookupRow | None:
        """One key's answer; a key that keeps failing raises (its batch is tried again)."""
        values = dict(zip(self.params, key, strict=True))
        url = self._connection.base_url + fill_text(self._path, values, in_path=True)
        query = {name: fill_text(text, values) for name, text in self._query.items()}
        body = fill_body(self._body, values) if self._body is not None else None
        for attempt in range(MAX_ATTEMPTS):
            try:
                return self._once(url, query, body)
            except RetriableError as exc:
                if attempt + 1 == MAX_ATTEMPTS:
                    raise self._unanswered(exc, url) from None
                self._sleep(self._retry.backoff(attempt, exc.retry_after))
        raise AssertionError("unreachable")

    def _unanswered(self, exc: RetriableError, url: str) -> RetriableError:
        """The last failure of a key, naming its URL (masked) when the message does not."""
        message = self._client.mask(exc.message)
        shown = self._client.shown(url)
        where = "" if shown in message else f" ({self._method} {shown})"
        return RetriableError(f"The lookup's API did not answer{where}: {message}",
                              cause=exc.cause, status=exc.status)

    def _once(self, url: str, query: dict[str, str], body: Any) -> LookupRow | None:
        shown = self._client.shown(url)
        try:
            check_url(self._policy, url, field=f"{self._field}.connection")
            with self._client.open(self._method, url, query, body) as response:
                data = self._read(response.iter_bytes(), shown)
        except NotAllowedHere as exc:
            raise FatalError(self._client.mask(exc.message), cause="not_allowed") from None
        except RetriableError:
            raise
        except ApplicationError as exc:
            if exc.status == 404:
                return None
            raise FatalError(self._client.mask(exc.message), cause=exc.cause,
                             status=exc.status) from None
        try:
            answer = orjson.loads(data) if data.strip() else None
        except orjson.JSONDecodeError:
            raise FatalError(f"The lookup's API answered {shown} with something that is not "
                             "JSON. Check the request's path.", cause="answer") from None
        return result_at(answer, self._result)

    def _read(self, chunks: Any, shown: str) -> bytes:
        data = bytearray()
        for chunk in chunks:
            data += chunk
            if len(data) > MAX_ANSWER_BYTES:
                raise FatalError(f"The lookup's API answered {shown} with more than "
                                 f"{MAX_ANSWER_BYTES // (1024 * 1024)} MB; a lookup reads one "
                                 "object per record. Check the request's path.",
                                 cause="answer")
        return bytes(data)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

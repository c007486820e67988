"""HTTP exports: the records of an API's answers, page after page, streamed.

Each page is requested once its records before it are consumed; its answer is parsed as it
arrives (``body.py``), so a page of any size takes the memory of one record. A page that fails
(429, 5xx, a network failure, a page that stops mid-way) is tried again, up to
``max_attempts`` times, waiting as its Retry-After says or with an exponential backoff; the
records of the page already given are not given twice. A page that keeps failing ends the
export with an ``ExportUnavailable`` naming its URL (secrets masked); the run's checkpoint
stays, and a resumed run starts at that page (page numbers, offsets) or walks to it again.

Positions are the ordinals of the records given (those an incremental window leaves out are
not counted); refs name the page and the item ("page 3, item 7").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import httpx
import ijson
import orjson

from segbridge.apps.files.reading import clip
from segbridge.apps.http.body import (
    BadLine,
    PageFound,
    TooDeep,
    json_items,
    ndjson_items,
    no_records_there,
)
from segbridge.apps.http.client import ApiClient, masker_for
from segbridge.apps.http.connection import HttpConnection
from segbridge.apps.http.pages import Page, Pager, PageRead
from segbridge.apps.http.since import Window, parse_moment
from segbridge.apps.http.walks import NOTES, Step, WalkNotes
from segbridge.apps.segment.client import classify_transport_error
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import FatalError, RetriableError
from segbridge.exports.contracts import SourceRecord
from segbridge.exports.errors import ExportError, ExportUnavailable
from segbridge.exports.limits import RecordLimits, excerpt
from segbridge.sinks.contracts import RetryPolicy

PageWalk = Generator[SourceRecord, None, PageRead]


class HttpSource:
    """The records of one HTTP export (``spec``: its section of the flow document)."""

    slow = True  # pages come with waits between them (``exports.contracts.Export``)

    def __init__(self, connection: HttpConnection, spec: Mapping[str, Any], *,
                 policy: AccessPolicy | None, limits: RecordLimits | None = None,
                 window: Window | None = None, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, walk: str | None = None,
                 notes: WalkNotes = NOTES) -> None:
        self.connection = connection
        self.spec = spec
        self.limits = limits or RecordLimits()
        self.window = window
        self.max_attempts = int(spec.get("max_attempts") or 5)
        self._policy = policy
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self.walk = walk
        self._notes = notes
        self.url = connection.base_url + str(spec.get("path") or "/")

    def __repr__(self) -> str:
        return f"HttpSource({masker_for(self.connection).mask(self.url)!r})"

    def read_share(self) -> float | None:
        """Unknown: an API seldom says how many pages are left."""
        return None

    def records(self, start_position: int = 0) -> Iterator[SourceRecord]:
        client = self._client()
        try:
            yield from self._walk(client, max(0, start_position))
        finally:
            client.close()

    def _client(self) -> ApiClient:
        return ApiClient(self.connection, timeout=float(self.spec.get("timeout_seconds") or 30),
                         policy=self._policy, rate=self.spec.get("requests_per_second"),
                         sleep=self._sleep)

    def _pager(self, client: ApiClient) -> Pager:
        query = dict(self.spec.get("query") or {})
        if self.window is not None:
            query.update(self.window.params())
        return Pager(self.url, query, self.spec.get("pagination"), self.connection.origin(),
                     client.mask)

    def _walk(self, client: ApiClient, start: int) -> Iterator[SourceRecord]:
        pager = self._pager(client)
        page, position = pager.first(start, counted_locally=self.window is not None)
        computed = Step(page, position, position)
        noted = self._notes.resume_at(self.walk, start) if self.walk and start else None
        if noted is not None and noted.position > computed.position:
            given = 0
            try:
                for record in self._steps(client, pager, noted, start):
                    given += 1
                    yield record
                return
            except ExportError:
                if given:
                    raise
            # the noted page failed before giving a record (its cursor may have expired
            # since): walk again from the page computed for the position
        yield from self._steps(client, pager, computed, start)

    def _steps(self, client: ApiClient, pager: Pager, step: Step,
               start: int) -> Iterator[SourceRecord]:
        """The walk from ``step`` on, each page noted as it is asked for."""
        page: Page | None = step.page
        position, offset = step.position, step.offset
        while page is not None:
            if self.walk is not None:
                self._notes.note(self.walk, Step(page, position, offset))
            read = yield from self._page(client, pager, page, position, start)
            position += read.kept
            offset += read.items
            page = pager.after(page, read, offset)

    def _page(self, client: ApiClient, pager: Pager, page: Page, position: int,
              start: int) -> PageWalk:
        """The page's records from ``start`` on; tried again while it fails retriably."""
        given = 0  # items of this page already given (a retry goes on after them)
        for attempt in range(1, self.max_attempts + 1):
            try:
                read = yield from self._attempt(client, pager, page, position, start, given)
                return read
            except _Partial as partial:
                given, failure = partial.given, partial.failure
            if attempt < self.max_attempts:
                self._sleep(self._retry.backoff(attempt - 1, failure.retry_after))
        raise ExportUnavailable(
            f"Page {page.number} of the export ({client.shown(self._page_url(page))}) failed "
            f"{self.max_attempts} times; the last time: {failure.message} Run the flow again "
            "when the API answers.",
            cause=failure.cause)

    def _attempt(self, client: ApiClient, pager: Pager, page: Page, position: int, start: int,
                 given: int) -> PageWalk:
        index = kept = 0
        shown = client.shown(self._page_url(page))
        try:
            with client.open(str(self.spec.get("method") or "GET"), page.url,
                             dict(page.params), self.spec.get("body")) as response:
                found = PageFound()
                items = self._items(response, pager, found, shown, client.mask)
                for index, item in enumerate(items, 1):
                    record = self._record(position + kept, page, index, item)
                    if record is not None:
                        kept += 1
                        if index > given and record.position >= start:
                            yield record
                    given = max(given, index)
                if self.spec.get("format") != "ndjson" and not found.array_seen:
                    raise no_records_there(str(self.spec.get("records") or "$"), found, shown)
                link = response.links.get("next", {}).get("url")
        except RetriableError as exc:
            raise _Partial(given, exc) from None
        except FatalError as exc:
            if isinstance(exc, ExportError):
                raise
            raise ExportError(exc.message, cause=exc.cause) from None
        return PageRead(index, found.values, link, kept)

    def _items(self, response: httpx.Response, pager: Pager, found: PageFound, shown: str,
               mask: Callable[[str], str]) -> Iterator[Any]:
        try:
            if self.spec.get("format") == "ndjson":
                yield from ndjson_items(response.iter_bytes(), self.limits.max_bytes)
            else:
                yield from json_items(response.iter_bytes(), str(self.spec.get("records") or "$"),
                                      pager.wanted, found, self.limits.max_depth)
        except httpx.HTTPError as exc:
            raise classify_transport_error(exc, str(response.request.url)) from None
        except ijson.JSONError as exc:
            said = mask(" ".join(str(exc).split()))[:300]
            raise ExportError(f"The answer of {shown} is not valid JSON ({said}). Check that "
                              "the path returns JSON, or set the export's format to ndjson "
                              "for one record per line.", cause="malformed_page") from None

    def _page_url(self, page: Page) -> str:
        return str(httpx.URL(page.url).copy_merge_params(dict(page.params)))

    def _record(self, position: int, page: Page, index: int,
                item: Any) -> SourceRecord | None:
        """The item as a record (an error record when it is not one), or None when the
        incremental window leaves it out."""
        ref = f"page {page.number}, item {index}"
        if isinstance(item, TooDeep):
            deep = self.limits.too_deep(self.limits.max_depth, at_least=True)
            return SourceRecord(position, ref, None, error=f"{ref}: {deep}")
        if isinstance(item, BadLine):
            return SourceRecord(position, ref, None, raw=clip(item.text),
                                error=f"{ref}: the line is not JSON ({item.reason})")
        if not isinstance(item, dict):
            return SourceRecord(position, ref, None, raw=clip(excerpt(item)),
                                error=f"{ref}: a record is a JSON object; this item is "
                                      f"{_kind(item)}")
        cursor = None
        if self.window is not None:
            cursor = field_value(item, self.window.field)
            moment = parse_moment(cursor)
            if moment is None:
                return SourceRecord(position, ref, None, raw=clip(excerpt(item)), cursor=cursor,
                                    error=f"{ref}: {self.window.field} is not a date and time "
                                          f"({cursor!r}); the export's since reads it")
            if not self.window.holds(moment):
                return None
        return self._checked(position, ref, item, cursor)

    def _checked(self, position: int, ref: str, item: dict[str, Any],
                 cursor: Any) -> SourceRecord:
        limits = self.limits
        text = orjson.dumps(item)
        problem = None if limits.line_fits(text) else limits.shape_problem(item)
        if problem is None and len(text) > limits.max_bytes:
            problem = limits.too_large(len(text))
        if problem is None:
            return SourceRecord(position, ref, item, cursor=cursor)
        return SourceRecord(position, ref, None, cursor=cursor, error=f"{ref}: {problem}",
                            raw=clip(excerpt(item), len(text)))


class _Partial(Exception):
    """A page failed retriably after giving ``given`` of its items."""

    def __init__(self, given: int, failure: RetriableError) -> None:
        super().__init__(failure.message)
        self.given = given
        self.failure = failure


def field_value(record: Mapping[str, Any], path: str) -> Any:
    """A record's value at a dotted path (``updated_at``, ``meta.updated``), or None."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _kind(item: Any) -> str:
    if isinstance(item, list):
        return "an array"
    if isinstance(item, str):
        return "a string"
    if item is None:
        return "null"
    return "a number" if isinstance(item, int | float) and not isinstance(item, bool) \
        else "a boolean"

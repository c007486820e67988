"""A small REST API on loopback for the HTTP application's tests: the same records served
with each kind of pagination, each kind of authentication checked for real, an OAuth 2 token
endpoint, and faults a test plans (statuses with headers, slow answers, broken JSON)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.servers import serve_in_thread, unused_port

TOKEN = "Bearer-t0ken/with+special=chars"
PASSWORD = "p@ss:word/é"
API_KEY = "k3y-ABC+/="
CLIENT_SECRET = "client-s3cret&more"


@dataclass
class Fault:
    """One planned answer instead of the normal one (``status`` 0: the normal answer)."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes | None = None
    cut_after: int = 0  # the normal page, cut (the connection dropped) after this many items


@dataclass
class ShopState:
    """What the API serves and checks; tests change it while it runs."""

    records: list[dict[str, Any]] = field(default_factory=list)
    auth: str = "none"  # none, basic, bearer, api_key_header, api_key_query, oauth2
    faults: dict[str, list[Fault]] = field(default_factory=dict)  # path -> next answers
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # path, query
    headers: list[dict[str, str]] = field(default_factory=list)  # each request's headers
    arrived: list[float] = field(default_factory=list)  # each request's time.monotonic()
    tokens_issued: int = 0
    valid_tokens: set[str] = field(default_factory=set)
    token_lifetime: int = 3600
    other_host: str = ""  # where /elsewhere's next link points
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> customer
    customer_delay: float = 0.0  # seconds each /customers answer takes
    in_flight: int = 0  # /customers requests being answered now
    peak_in_flight: int = 0  # the most at once

    def add(self, count: int, updated: datetime | None = None) -> None:
        start = len(self.records)
        when = updated or datetime(2026, 1, 1, tzinfo=UTC)
        for n in range(start + 1, start + count + 1):
            changed = when + timedelta(milliseconds=n - start)
            self.records.append({"id": n, "name": f"Zoë {n}", "email": f"u{n}@example.com",
                                 "updated_at": changed.isoformat()})

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    @property
    def timed_requests(self) -> list[tuple[str, dict[str, str], float]]:
        """Each request's path, query and time of arrival (time.monotonic())."""
        return [(path, query, when)
                for (path, query), when in zip(self.requests, self.arrived, strict=True)]


def sample(state: ShopState, request: Request) -> list[dict[str, Any]]:
    since = request.query_params.get("updated_since")
    if since is None:
        return state.records
    moment = datetime.fromisoformat(since)
    return [r for r in state.records if datetime.fromisoformat(r["updated_at"]) > moment]


def authorized(state: ShopState, request: Request) -> bool:
    headers, query = request.headers, request.query_params
    if state.auth == "basic":
        expected = base64.b64encode(f"shop:{PASSWORD}".encode()).decode()
        return headers.get("authorization") == f"Basic {expected}"
    if state.auth == "bearer":
        return headers.get("authorization") == f"Bearer {TOKEN}"
    if state.auth == "api_key_header":
        return headers.get("x-api-key") == API_KEY
    if state.auth == "api_key_query":
        return query.get("api_key") == API_KEY
    if state.auth == "oauth2":
        given = headers.get("authorization", "").removeprefix("Bearer ")
        return given in state.valid_tokens
    return True


def shop_app(state: ShopState) -> Starlette:
    async def guard(request: Request) -> Response | None:
        state.requests.append((request.url.path, dict(request.query_params)))
        state.headers.append(dict(request.headers))
        state.arrived.append(time.monotonic())
        planned = state.faults.get(request.url.path)
        fault = planned.pop(0) if planned and not planned[0].cut_after else None
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.body is not None:
            return Response(fault.body, media_type="application/json")
        if fault is not None and fault.status:
            return JSONResponse({"error": "planned"}, status_code=fault.status,
                                headers=fault.headers)
        if not authorized(state, request):
            return JSONResponse({"error": "who are you?"}, status_code=401)
        return None

    def window(request: Request, start: int, size: int) -> list[dict[str, Any]]:
        return sample(state, request)[start:start + size]

    async def health(request: Request) -> Response:
        return await guard(request) or JSONResponse({"ok": True})

    async def by_page(request: Request) -> Response:
        size = int(request.query_params.get("per_page", "10"))
        page = int(request.query_params.get("page", "1"))
        refused = await guard(request)
        items = window(request, (page - 1) * size, size)
        planned = state.faults.get(request.url.path)
        if refused is None and planned and planned[0].cut_after:
            return cut(items, planned.pop(0).cut_after)
        return refused or JSONResponse({"data": {"items": items}})

    async def search(request: Request) -> Response:
        asked = orjson.loads(await request.body())
        found = [r for r in state.records if r["id"] in asked.get("ids", [])]
        return await guard(request) or JSONResponse({"hits": found})

    async def by_offset(request: Request) -> Response:
        offset = int(request.query_params.get("offset", "0"))
        limit = int(request.query_params.get("limit", "10"))
        return await guard(request) or JSONResponse({"results": window(request, offset, limit)})

    async def by_cursor(request: Request) -> Response:
        after = int(request.query_params.get("cursor", "0"))
        items = window(request, after, 4)
        more = after + 4 < len(sample(state, request))
        return await guard(request) or JSONResponse(
            {"items": items, "meta": {"next_cursor": str(after + 4) if more else None}})

    async def by_link(request: Request) -> Response:
        page = int(request.query_params.get("page", "1"))
        items = window(request, (page - 1) * 5, 5)
        headers = {}
        if page * 5 < len(sample(state, request)):
            headers["Link"] = f'</link?page={page + 1}>; rel="next", </link?page=1>; rel="first"'
        return await guard(request) or JSONResponse(items, headers=headers)

    async def by_next_url(request: Request) -> Response:
        page = int(request.query_params.get("page", "1"))
        items = window(request, (page - 1) * 3, 3)
        more = page * 3 < len(sample(state, request))
        base = str(request.base_url).rstrip("/")
        return await guard(request) or JSONResponse(
            {"records": items, "links": {"next": f"{base}/next?page={page + 1}" if more
                                         else None}})

    async def elsewhere(request: Request) -> Response:
        return await guard(request) or JSONResponse(
            {"records": state.records[:2], "links": {"next": f"{state.other_host}/steal"}})

    async def ndjson(request: Request) -> Response:
        lines = b"".join(orjson.dumps(r) + b"\n" for r in sample(state, request))
        return await guard(request) or Response(lines, media_type="application/x-ndjson")

    async def big(request: Request) -> Response:
        count = int(request.query_params.get("count", "1000"))

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"total": %d, "data": [' % count
            for n in range(count):
                comma = b"," if n else b""
                yield comma + orjson.dumps({"id": n, "name": f"customer {n}",
                                            "note": "x" * 150})
            yield b"]}"

        return await guard(request) or StreamingResponse(chunks(),
                                                         media_type="application/json")

    async def customer(request: Request) -> Response:
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            if state.customer_delay:
                await asyncio.sleep(state.customer_delay)
            refused = await guard(request)
            if refused is not None:
                return refused
            found = state.customers.get(request.path_params["id"])
            if found is None:
                return JSONResponse({"error": "no such customer"}, status_code=404)
            return JSONResponse({"data": found})
        finally:
            state.in_flight -= 1

    async def find_customers(request: Request) -> Response:
        asked = orjson.loads(await request.body())
        found = [c for c in state.customers.values() if c.get("email") == asked.get("email")]
        return await guard(request) or JSONResponse({"results": found})

    async def token(request: Request) -> Response:
        form = await request.form()
        if (form.get("grant_type"), form.get("client_id"), form.get("client_secret")) != \
                ("client_credentials", "segbridge", CLIENT_SECRET):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        state.tokens_issued += 1
        issued = f"access-{state.tokens_issued}"
        state.valid_tokens = {issued}
        return JSONResponse({"access_token": issued, "token_type": "bearer",
                             "expires_in": state.token_lifetime})

    return Starlette(routes=[
        Route("/health", health), Route("/pages", by_page), Route("/offset", by_offset),
        Route("/cursor", by_cursor), Route("/link", by_link), Route("/next", by_next_url),
        Route("/elsewhere", elsewhere), Route("/ndjson", ndjson), Route("/big", big),
        Route("/oauth/token", token, methods=["POST"]),
        Route("/search", search, methods=["POST"]),
        Route("/customers/find", find_customers, methods=["POST"]),
        Route("/customers/{id}", customer),
    ])


def cut(items: list[dict[str, Any]], after: int) -> Response:
    """A page whose answer stops after ``after`` items: the connection is dropped."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"data": {"items": ['
        for n, item in enumerate(items[:after]):
            yield (b"," if n else b"") + orjson.dumps(item)
        raise ConnectionAbortedError("the test API drops the connection mid-page")

    return StreamingResponse(chunks(), media_type="application/json")


@contextmanager
def shop_api_process() -> Iterator[str]:
    """The API in a process of its own (what it buffers is not the test's memory)."""
    port = unused_port()
    code = ("import uvicorn; from tests.integration.apps.http.shop_api import ShopState, "
            f"shop_app; uvicorn.run(shop_app(ShopState()), host='127.0.0.1', port={port}, "
            "log_level='warning')")
    root = Path(__file__).parents[4]
    process = subprocess.Popen([sys.executable, "-c", code], cwd=root,
                               env={**os.environ, "PYTHONPATH": str(root)})
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the API process did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def shop_api(records: int = 23, auth: str = "none") -> Iterator[tuple[str, ShopState]]:
    """The API serving ``records`` records; yields its base URL and its state."""
    state = ShopState(auth=auth)
    state.add(records)
    with serve_in_thread(shop_app(state)) as url:
        yield url, state

"""The intake of webhook requests: which listener a URL token names, and the group commit
that stores verified requests' records before they are answered.

Durability: a request is answered 2xx only once its records are committed. Throughput: the
requests that arrive while a commit is in flight are collected by the one writer (an asyncio
task of the server's event loop) and inserted in ONE transaction (the records, the counters,
the last payloads), then all answered; so one commit serves as many requests as arrived
during the previous one, and a lone request waits for one commit only. The same transaction
checks again that each request's token still names its listener: a URL rotated meanwhile
stores nothing (404).

Listeners are looked up by the SHA-256 of the token and kept for a second (their verification
rule and decrypted secret), so a request costs no query of its own; ``forget`` drops a flow's
entry at once when its token or secret changes in this process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select, update

from segbridge.apps.webhook.document import WebhookExport
from segbridge.apps.webhook.verification import fingerprint
from segbridge.core.clock import utcnow
from segbridge.core.secrets import Secret
from segbridge.core.vault import Vault
from segbridge.observability.metrics import INTAKE_METRICS, IntakeMetrics
from segbridge.runs.webhook_delivery import WebhookDelivery
from segbridge.runs.webhook_listeners import RECENT_PAYLOADS, is_webhook_flow, secret_aad
from segbridge.storage.db import Database
from segbridge.storage.models import Flow
from segbridge.storage.webhook_models import WebhookListener, WebhookRecent, WebhookRecord

log = logging.getLogger(__name__)
LISTENERS: Table = WebhookListener.__table__  # type: ignore[assignment]
RECORDS: Table = WebhookRecord.__table__  # type: ignore[assignment]
RECENT: Table = WebhookRecent.__table__  # type: ignore[assignment]
CACHE_SECONDS = 1.0
TRIM_SECONDS = 1.0  # the last payloads beyond RECENT_PAYLOADS are deleted this often
MAX_GROUP = 2000  # requests in one commit


@dataclass(frozen=True)
class Listener:
    """What the intake knows of a listener: its flow, how requests are verified, its secret."""

    flow_id: str
    account_id: str
    token_hash: str
    export: WebhookExport
    secret: Secret | None = field(repr=False)


@dataclass
class _Request:
    listener: Listener
    records: list[dict[str, Any]] | None  # None: refused (counted, never stored)
    request_id: str
    answer: asyncio.Future[bool] | None


class WebhookIntake:
    """One per server process: listeners by token, and the group-committing writer."""

    def __init__(self, db: Database, vault: Vault, delivery: WebhookDelivery, *,
                 cache_seconds: float = CACHE_SECONDS,
                 metrics: IntakeMetrics | None = None) -> None:
        self._db = db
        self._vault = vault
        self._delivery = delivery
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Listener | None]] = {}
        self._loading: dict[str, asyncio.Future[Listener | None]] = {}
        self._queue: asyncio.Queue[_Request] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._trimmed: dict[str, float] = {}
        self.metrics = metrics or INTAKE_METRICS

    # ---- listeners -------------------------------------------------------------------------

    async def listener(self, token: str) -> Listener | None:
        """The listener whose URL has this token (None: no such URL). One lookup at a time
        per token: requests arriving meanwhile wait for it rather than ask again."""
        token_hash = fingerprint(token)
        cached = self._cache.get(token_hash)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        loading = self._loading.get(token_hash)
        if loading is None:
            loading = self._loading[token_hash] = asyncio.ensure_future(
                asyncio.to_thread(self._load, token_hash))
            loading.add_done_callback(lambda _done: self._loading.pop(token_hash, None))
        found = await asyncio.shield(loading)
        self._cache[token_hash] = (time.monotonic() + self._cache_seconds, found)
        if len(self._cache) > 10_000:
            self._cache.clear()
        return found

    def forget(self, flow_id: str) -> None:
        """The flow's token or secret changed: look it up again."""
        for token_hash, (_expires, found) in list(self._cache.items()):
            if found is not None and found.flow_id == flow_id:
                self._cache.pop(token_hash, None)

    def _load(self, token_hash: str) -> Listener | None:
        with self._db.session() as session:
            row = session.execute(select(WebhookListener, Flow).join(
                Flow, Flow.id == WebhookListener.flow_id).where(
                WebhookListener.token_hash == token_hash)).first()
            if row is None or not is_webhook_flow(row[1]):
                return None
            listener, flow = row
            return Listener(flow.id, flow.account_id, token_hash,
                            WebhookExport.model_validate(flow.definition["export"]),
                            self._secret(listener))

    def _secret(self, listener: WebhookListener) -> Secret | None:
        if listener.secret_ciphertext is None:
            return None
        return self._vault.decrypt(listener.secret_ciphertext,
                                   secret_aad(listener.account_id, listener.flow_id))

    # ---- the writer --------------------------------------------------------------------------

    async def store(self, listener: Listener, records: list[dict[str, Any]],
                    request_id: str) -> bool:
        """Commit the records; False when the listener's URL changed meanwhile."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._enqueue(_Request(listener, records, request_id, answer))
        return await answer

    async def refused(self, listener: Listener, outcome: str) -> None:
        """Count a refused request (unverified, unreadable, too large); nothing is stored.
        Returns once counted (so the counts a caller reads next include it)."""
        self.metrics.requests.labels(listener.flow_id, outcome).inc()
        counted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._enqueue(_Request(listener, None, "", counted))
        try:
            await counted
        except Exception:  # the database is unreachable: the answer is a refusal all the same
            log.warning("a refused webhook request of flow %s could not be counted",
                        listener.flow_id)

    def _enqueue(self, request: _Request) -> None:
        if self._queue is None or self._writer is None or self._writer.done():
            self._queue = asyncio.Queue()
            self._writer = asyncio.get_running_loop().create_task(self._write(self._queue))
        self._queue.put_nowait(request)

    async def _write(self, queue: asyncio.Queue[_Request]) -> None:
        while True:
            group = [await queue.get()]
            await asyncio.sleep(0)  # requests whose bodies are read join this commit
            while not queue.empty() and len(group) < MAX_GROUP:
                group.append(queue.get_nowait())
            try:
                accepted = await asyncio.to_thread(self._commit, group)
            except Exception as exc:  # the database is unreachable: nobody gets a 2xx
                for request in group:
                    if request.answer is not None and not request.answer.done():
                        request.answer.set_exception(exc)
                continue
            for request, ok in zip(group, accepted, strict=True):
                if request.answer is not None and not request.answer.done():
                    request.answer.set_result(ok)

    def _commit(self, group: Sequence[_Request]) -> list[bool]:
        """One transaction for the group (Core statements: no ORM work per request)."""
        now = utcnow()
        with self._db.engine.begin() as connection:
            counts = _count(group)
            live = _add_counts(connection, counts)
            accepted = [request.records is not None and _key(request) in live
                        for request in group]
            rows = [{"flow_id": request.listener.flow_id, "received_at": now,
                     "request_id": request.request_id, "payload": record}
                    for request, ok in zip(group, accepted, strict=True) if ok
                    for record in request.records or ()]
            if rows:
                connection.execute(insert(RECORDS), rows)
                self._keep_recent(connection, _shown(group, accepted, now))
        self._arrived(group, accepted, counts)
        return accepted

    def _keep_recent(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        """The last payloads of each flow: this commit's newest; the older ones trimmed at
        most once a second per flow."""
        newest: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            newest[row["flow_id"]].append(row)
        now = time.monotonic()
        for flow_id, flow_rows in newest.items():
            connection.execute(insert(RECENT), flow_rows[-RECENT_PAYLOADS:])
            if self._trimmed.get(flow_id, 0.0) + TRIM_SECONDS <= now:
                self._trimmed[flow_id] = now
                _trim_recent(connection, flow_id)

    def _arrived(self, group: Sequence[_Request], accepted: list[bool],
                 counts: dict[tuple[str, str], list[int]]) -> None:
        listeners = {_key(request): request.listener
                     for request, ok in zip(group, accepted, strict=True) if ok}
        for key, listener in listeners.items():
            _received, verified, _rejected, records = counts[key]
            self.metrics.requests.labels(listener.flow_id, "accepted").inc(verified)
            self.metrics.records.labels(listener.flow_id).inc(records)
            self._delivery.arrived(listener.flow_id, records, listener.export.batch)


def _shown(group: Sequence[_Request], accepted: list[bool],
           now: datetime) -> list[dict[str, Any]]:
    """The accepted records as the flow's page keeps them: sensitive fields masked."""
    return [{"flow_id": request.listener.flow_id, "received_at": now,
             "request_id": request.request_id,
             "payload": request.listener.export.shown(record)}
            for request, ok in zip(group, accepted, strict=True) if ok
            for record in request.records or ()]


def _key(request: _Request) -> tuple[str, str]:
    return (request.listener.flow_id, request.listener.token_hash)


def _count(group: Sequence[_Request]) -> dict[tuple[str, str], list[int]]:
    """Per listener (flow, token): requests received, verified, rejected, records."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for request in group:
        per = counts[_key(request)]
        per[0] += 1
        if request.records is None:
            per[2] += 1
        else:
            per[1] += 1
            per[3] += len(request.records)
    return dict(counts)


def _add_counts(connection: Connection, counts: dict[tuple[str, str], list[int]],
                ) -> set[tuple[str, str]]:
    """Add the counts to each listener whose token is still the one requests came with; the
    listeners (flow, token) found so: a token rotated meanwhile counts and stores nothing."""
    live = set()
    for (flow_id, token_hash), (received, verified, rejected, records) in counts.items():
        done = connection.execute(update(LISTENERS).where(
            LISTENERS.c.flow_id == flow_id, LISTENERS.c.token_hash == token_hash).values(
            received=LISTENERS.c.received + received,
            verified=LISTENERS.c.verified + verified,
            rejected=LISTENERS.c.rejected + rejected,
            records=LISTENERS.c.records + records))
        if done.rowcount:
            live.add((flow_id, token_hash))
    return live


def _trim_recent(connection: Connection, flow_id: str) -> None:
    oldest_kept = (select(RECENT.c.id).where(RECENT.c.flow_id == flow_id)
                   .order_by(RECENT.c.id.desc()).offset(RECENT_PAYLOADS - 1).limit(1)
                   .scalar_subquery())
    connection.execute(delete(RECENT).where(RECENT.c.flow_id == flow_id,
                                            RECENT.c.id < oldest_kept))

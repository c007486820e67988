"""Delivery of received webhook records: a run of the flow once records wait.

The intake tells ``arrived`` which flows got records; a flow's run is created at most
``batch.max_seconds`` after the first record waiting (at once when ``batch.max_records`` are
waiting), when the flow has no run. The run holds, in its definition, the records with ids
after the flow's cursor (the last id a finished run delivered), up to ``max_records``, in id
order; it is created and queued in one transaction (``create_run`` + ``enqueue_in``, as
``FlowService.start_run`` does), so in-process (SQLite) and job-queue (PostgreSQL) servers
deliver alike, and of several servers only one creates it. When the run finishes, the engine
stores its cursor (``webhook_through``); the records through it are deleted when the next run
is created, or by the sweep. A failed or canceled run stores no cursor: its records go again
with the next run, with the same messageIds. Records that arrive during a run wait for the
next one.

A sweep every few seconds finds flows with records waiting that nobody was told about (a
server restarted after a SIGKILL, a run that ended while records waited).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import delete, select

from segbridge.apps.webhook.document import Batching, WebhookExport
from segbridge.apps.webhook.export import RECEIVED
from segbridge.core.errors import Conflict
from segbridge.runs.queue import RunQueue
from segbridge.runs.store import create_run
from segbridge.runs.webhook_listeners import delivered_through, is_webhook_flow
from segbridge.storage.db import Database
from segbridge.storage.models import Flow
from segbridge.storage.webhook_models import WebhookRecord

log = logging.getLogger(__name__)
TRIGGER = "webhook"  # a run's trigger, as its page shows it
TICK_SECONDS = 0.05
SWEEP_SECONDS = 2.0


class Started(Enum):
    RUN = "run"  # a run was created for waiting records
    NOTHING = "nothing"  # no record waits (or the flow is gone)
    BUSY = "busy"  # the flow has a run, or is disabled: try again later


@dataclass
class _Waiting:
    since: float  # monotonic time the first waiting record was reported
    records: int
    batch: Batching


class WebhookDelivery:
    """Creates the runs of webhook flows with records waiting (a daemon thread)."""

    def __init__(self, db: Database, queue: RunQueue, *, tick_seconds: float = TICK_SECONDS,
                 sweep_seconds: float = SWEEP_SECONDS) -> None:
        self._db = db
        self._queue = queue
        self._tick = tick_seconds
        self._sweep_every = sweep_seconds
        self._waiting: dict[str, _Waiting] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def arrived(self, flow_id: str, records: int, batch: Batching) -> None:
        """Records of the flow were committed (thread-safe; called by the intake)."""
        with self._lock:
            waiting = self._waiting.get(flow_id)
            if waiting is None:
                waiting = self._waiting[flow_id] = _Waiting(time.monotonic(), 0, batch)
            waiting.records += records
            waiting.batch = batch
            full = waiting.records >= batch.max_records
        if full:
            self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="webhook-delivery",
                                            daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        next_sweep = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_sweep:
                    self.sweep()
                    next_sweep = time.monotonic() + self._sweep_every
                self.deliver_due()
            except Exception as exc:  # (a SQL error's message may quote records: not logged)
                log.error("webhook delivery failed (%s); trying again", type(exc).__name__)
            self._wake.wait(self._tick)
            self._wake.clear()

    def sweep(self) -> None:
        """Report every flow with records stored (a restart, a run that ended meanwhile)."""
        with self._db.session() as session:
            flows = session.scalars(select(WebhookRecord.flow_id).distinct()).all()
        for flow_id in flows:
            with self._lock:
                if flow_id not in self._waiting:
                    self._waiting[flow_id] = _Waiting(0.0, 0, Batching())

    def deliver_due(self) -> None:
        """Start the runs of the flows whose wait is over."""
        now = time.monotonic()
        with self._lock:
            due = [(flow_id, waiting) for flow_id, waiting in self._waiting.items()
                   if waiting.records >= waiting.batch.max_records
                   or now - waiting.since >= waiting.batch.max_seconds]
        for flow_id, waiting in due:
            seen = waiting.records
            outcome, more = self.start_run(flow_id)
            if outcome is Started.BUSY:  # asked again after max_seconds, not every tick
                with self._lock:
                    waiting.since = time.monotonic()
                continue
            with self._lock:
                if self._waiting.get(flow_id) is not waiting:
                    continue
                if more:  # more wait: the next run starts once this one ends
                    waiting.since = 0.0
                elif waiting.records > seen:  # reported while the run was created
                    waiting.since, waiting.records = time.monotonic(), waiting.records - seen
                else:
                    del self._waiting[flow_id]

    def start_run(self, flow_id: str) -> tuple[Started, bool]:
        """A run for the flow's waiting records, unless it has one (or none wait); and
        whether more records wait than the run took."""
        try:
            with self._db.session() as session:
                flow = session.get(Flow, flow_id)
                if flow is None or not is_webhook_flow(flow):
                    return Started.NOTHING, False
                if flow.active_run_id is not None or not flow.enabled:
                    return Started.BUSY, False
                through = delivered_through(flow)
                session.execute(delete(WebhookRecord).where(
                    WebhookRecord.flow_id == flow.id, WebhookRecord.id <= through))
                batch = WebhookExport.model_validate(flow.definition["export"]).batch
                rows = session.execute(
                    select(WebhookRecord.id, WebhookRecord.payload)
                    .where(WebhookRecord.flow_id == flow.id, WebhookRecord.id > through)
                    .order_by(WebhookRecord.id).limit(batch.max_records)).all()
                if not rows:
                    return Started.NOTHING, False
                definition = dict(flow.definition)
                definition["export"] = {**definition["export"],
                                        RECEIVED: [[row_id, payload] for row_id, payload in rows]}
                run = create_run(session, flow, trigger=TRIGGER, fresh_message_ids=False,
                                 definition=definition)
                self._queue.enqueue_in(session, run.id, flow.id)
                full = len(rows) == batch.max_records
        except Conflict:  # another server created the flow's run first
            return Started.BUSY, False
        return Started.RUN, full

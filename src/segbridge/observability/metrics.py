"""Prometheus metrics of segbridge, in a registry of its own (never prometheus' global one).

Two kinds:

* this process's counters: webhook intake (``INTAKE_METRICS``: requests by outcome, records
  committed, per flow id) and delivery, kept by the Segment sink (``SINK``): requests by
  outcome, events sent and failed, request latency and requests in flight, each labelled by
  the connection id of the governor pool (the connection whose concurrency level the request
  draws on: the connection itself, or the lender a borrower borrows from). Never a name, a
  URL, a write key, a token or record data.
* read from the database at scrape time (``DatabaseCollector``): runs by status, the oldest
  queued run, connections by status and, on PostgreSQL with procrastinate's tables, the job
  queue's depth, its oldest job and the workers' heartbeats. Each is one aggregate query over
  an indexed column, so a scrape costs a handful of small queries however many runs exist.

``registry_for(db)`` puts both in a new ``CollectorRegistry`` for one scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, text

import segbridge
from segbridge.core.clock import utcnow
from segbridge.runs.lifecycle import RunStatus
from segbridge.storage.db import Database

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOBS_TABLE = "procrastinate_jobs"
WORKERS_TABLE = "procrastinate_workers"
STATEMENT_TIMEOUT_MS = 2000  # a scrape never holds a PostgreSQL connection longer


@dataclass(frozen=True)
class SinkMetrics:
    """What Segment sinks of this process count, per connection (the governor pool's id)."""

    requests: Counter
    events_sent: Counter
    events_failed: Counter
    latency: Histogram
    in_flight: Gauge

    def collectors(self) -> tuple[Collector, ...]:
        return (self.requests, self.events_sent, self.events_failed, self.latency,
                self.in_flight)


def _sink_metrics() -> SinkMetrics:
    label = ("connection",)
    return SinkMetrics(
        requests=Counter("segbridge_segment_requests", "Requests sent to Segment, by outcome "
                         "(ok, rate_limited, retriable, fatal)", (*label, "outcome"),
                         registry=None),
        events_sent=Counter("segbridge_events_sent", "Calls Segment accepted", label,
                            registry=None),
        events_failed=Counter("segbridge_events_failed", "Calls that ended as record errors "
                              "(refused, or given up after retries)", label, registry=None),
        latency=Histogram("segbridge_segment_request_seconds", "Duration of one request to "
                          "Segment (its governor slot held; waiting for the slot excluded)",
                          label, buckets=LATENCY_BUCKETS, registry=None),
        in_flight=Gauge("segbridge_segment_requests_in_flight", "Requests to Segment this "
                        "process has in flight (holding a governor slot)", label,
                        registry=None),
    )


SINK = _sink_metrics()
"""The process's delivery metrics (one set per process, as a process has one governor)."""


@dataclass(frozen=True)
class IntakeMetrics:
    """Webhook intake counters of this process, per flow (never a token, never a payload)."""

    requests: Counter  # by outcome: accepted, unverified, unreadable, too_large
    records: Counter

    def collectors(self) -> tuple[Collector, ...]:
        return (self.requests, self.records)


def intake_metrics() -> IntakeMetrics:
    return IntakeMetrics(
        requests=Counter("segbridge_webhook_requests", "Webhook requests received, by outcome "
                         "(accepted, unverified, unreadable, too_large)", ("flow", "outcome"),
                         registry=None),
        records=Counter("segbridge_webhook_records", "Webhook records committed",
                        ("flow",), registry=None))


INTAKE_METRICS = intake_metrics()
"""This process's webhook intake counters (``runs.webhook_intake``)."""


def registry_for(db: Database) -> CollectorRegistry:
    """A registry for one scrape: this process's counters and the database's aggregates."""
    registry = CollectorRegistry()
    for collector in (*SINK.collectors(), *INTAKE_METRICS.collectors(), DatabaseCollector(db),
                      _BuildInfo()):
        registry.register(collector)
    return registry


class _BuildInfo(Collector):
    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("segbridge_build_info", "segbridge's version",
                                 labels=("version",))
        info.add_metric((segbridge.__version__,), 1.0)
        yield info


class DatabaseCollector(Collector):
    """Aggregates read at scrape time; ``segbridge_database_up`` 0 when they cannot be read."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def describe(self) -> Iterable[Metric]:
        return ()  # registering must not query the database; names are checked at collect

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("segbridge_database_up",
                               "1 when this scrape could read segbridge's database")
        try:
            metrics = self._read()
        except Exception:  # a scrape reports the database down, never fails
            up.add_metric((), 0.0)
            yield up
            return
        up.add_metric((), 1.0)
        yield up
        yield from metrics

    def _read(self) -> list[Metric]:
        with self._db.engine.connect() as connection:
            postgresql = connection.dialect.name == "postgresql"
            if postgresql:
                connection.execute(text(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            metrics = [*_runs(connection), _connections(connection)]
            if postgresql:
                metrics += _job_queue(connection)
            connection.rollback()
            return metrics


def _runs(connection: Connection) -> list[Metric]:
    by_status = GaugeMetricFamily("segbridge_runs", "Runs by status (all accounts)",
                                  labels=("status",))
    counts: dict[str, int] = dict(connection.execute(
        text("SELECT status, count(*) FROM runs GROUP BY status")).all())
    for status in RunStatus:
        by_status.add_metric((status.value,), float(counts.get(status.value, 0)))
    oldest = GaugeMetricFamily("segbridge_runs_oldest_queued_age_seconds",
                               "How long the longest-waiting queued run has waited (since it "
                               "was created, or given back; 0 when none waits)")
    first = connection.execute(text(  # a run given back waits again from its give-back
        "SELECT min(coalesce(heartbeat_at, created_at)) FROM runs WHERE status = :queued"),
        {"queued": RunStatus.QUEUED.value}).scalar()
    oldest.add_metric((), _age_seconds(first))
    return [by_status, oldest]


def _connections(connection: Connection) -> Metric:
    family = GaugeMetricFamily("segbridge_connections", "Connections by status (online, "
                               "offline, untested)", labels=("status",))
    for status, count in connection.execute(
            text("SELECT status, count(*) FROM connections GROUP BY status")).all():
        family.add_metric((str(status),), float(count))
    return family


def _job_queue(connection: Connection) -> list[Metric]:
    """procrastinate's queue, when its tables exist in this database."""
    metrics: list[Metric] = []
    if _table_exists(connection, JOBS_TABLE):
        metrics += _jobs(connection)
    if _table_exists(connection, WORKERS_TABLE):
        metrics += _workers(connection)
    return metrics


def _jobs(connection: Connection) -> list[Metric]:
    depth = GaugeMetricFamily("segbridge_queue_jobs", "Jobs of the queue waiting (todo) or "
                              "being executed (doing)", labels=("queue", "status"))
    for queue, status, count in connection.execute(text(
            f"SELECT queue_name, status::text, count(*) FROM {JOBS_TABLE} "  # noqa: S608
            "WHERE status IN ('todo', 'doing') GROUP BY queue_name, status")).all():
        depth.add_metric((queue, status), float(count))
    age = GaugeMetricFamily("segbridge_queue_oldest_job_age_seconds", "How long the oldest "
                            "job due to run has waited (since deferred, or since due)",
                            labels=("queue",))
    for queue, seconds in connection.execute(text(_OLDEST_JOB)).all():
        age.add_metric((queue,), max(0.0, float(seconds or 0.0)))
    return [depth, age]


_OLDEST_JOB = f"""
WITH oldest AS (
    SELECT queue_name, min(id) AS id FROM {JOBS_TABLE}
    WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())
    GROUP BY queue_name)
SELECT oldest.queue_name, EXTRACT(EPOCH FROM now() - COALESCE(
    jobs.scheduled_at,
    (SELECT min(events.at) FROM procrastinate_events AS events WHERE events.job_id = oldest.id),
    now()))
FROM oldest JOIN {JOBS_TABLE} AS jobs ON jobs.id = oldest.id
"""  # noqa: S608 - table names are constants


def _workers(connection: Connection) -> list[Metric]:
    count = GaugeMetricFamily("segbridge_queue_workers", "Workers registered with the queue")
    age = GaugeMetricFamily("segbridge_queue_worker_heartbeat_age_seconds", "Seconds since "
                            "each worker's last heartbeat", labels=("worker",))
    rows = connection.execute(text(_WORKERS)).all()
    count.add_metric((), float(len(rows)))
    for worker, seconds in rows:
        age.add_metric((str(worker),), max(0.0, float(seconds)))
    return [count, age]


_WORKERS = (f"SELECT id, EXTRACT(EPOCH FROM now() - last_heartbeat) FROM {WORKERS_TABLE} "  # noqa: S608
            "ORDER BY id LIMIT 1000")  # (a constant table name; a bounded answer)


def _table_exists(connection: Connection, table: str) -> bool:
    return connection.execute(text("SELECT to_regclass(:table) IS NOT NULL"),
                              {"table": table}).scalar() is True


def _age_seconds(since: object) -> float:
    """Seconds from ``since`` (UTC; naive as SQLite answers it) to now; 0 for none."""
    if since is None:
        return 0.0
    if isinstance(since, str):  # SQLite answers an aggregate's datetime as text
        since = datetime.fromisoformat(since)
    assert isinstance(since, datetime)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return max(0.0, (utcnow() - since).total_seconds())

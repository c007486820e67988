"""procrastinate, built from the runtime's PostgreSQL URL: the task names, queues and locks.

Two kinds of App: a synchronous one for deferring jobs from the services (``sync_app``), an
asynchronous one for a worker (``worker_app``, its tasks registered by the worker). Both speak
to the same tables (migration 0006), so a job deferred by one is seen by the other.
"""

from __future__ import annotations

from typing import Final

from procrastinate import App, PsycopgConnector, SyncPsycopgConnector
from sqlalchemy.engine import make_url

EXECUTE_RUN: Final = "segbridge.execute_run"
SCHEDULE_TICK: Final = "segbridge.schedule_tick"
TAKE_OVER: Final = "segbridge.take_over"
RUNS_QUEUE: Final = "runs"
"""The queue of run jobs; ``segbridge worker --queues`` chooses among the queues."""
PERIODIC_QUEUE: Final = "periodic"
"""The queue of the periodic ticks: worked by its own small worker in every process, so
long runs filling every run slot never delay a take-over."""
QUEUES: Final = (RUNS_QUEUE,)
PERIODIC_MAX_DELAY = 30.0
"""Ticks missed by more than this (every worker was down) are not deferred late."""


def is_postgresql(url: str) -> bool:
    return url.startswith("postgresql")


def conninfo(url: str) -> str:
    """psycopg's connection string for segbridge's SQLAlchemy URL (``postgresql+psycopg://``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sync_app(url: str, pool_size: int = 4) -> App:
    """An App for deferring jobs from synchronous code (the services)."""
    connector = SyncPsycopgConnector(conninfo=conninfo(url), min_size=1, max_size=pool_size)
    return App(connector=connector)


def worker_app(url: str, pool_size: int) -> App:
    """An App for a worker's event loop (its tasks are registered by ``QueueWorker``)."""
    connector = PsycopgConnector(conninfo=conninfo(url), min_size=1, max_size=pool_size)
    return App(connector=connector, periodic_defaults={"max_delay": PERIODIC_MAX_DELAY})

"""``segbridge worker``: execute runs from the job queue (PostgreSQL installs)."""

from __future__ import annotations

import asyncio

import click

from segbridge.cli.context import handles_errors
from segbridge.core.gc_tuning import freeze_long_lived_objects
from segbridge.core.settings import load_settings
from segbridge.runtime import build_runtime

NEEDS_POSTGRESQL = ("segbridge worker needs PostgreSQL (SEGBRIDGE_DATABASE_URL=postgresql+"
                    "psycopg://...): with SQLite, `segbridge serve` executes every run itself.")


@click.command("worker")
@click.option("--concurrency", type=click.IntRange(1, 64), default=None,
              help="Runs executed at once (default: the worker_concurrency setting, 4).")
@click.option("--queues", default=None, metavar="NAMES",
              help="Comma-separated queues to work (default: runs).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve /metrics, /healthz and /readyz on this port (default: none).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="Address for --metrics-port; another machine's scraper needs 0.0.0.0 "
                   "and SEGBRIDGE_METRICS_TOKEN.")
@handles_errors
def command(concurrency: int | None, queues: str | None, metrics_port: int | None,
            metrics_host: str) -> None:
    """Execute runs from the job queue until SIGTERM (which gives the current runs back).

    Start as many as wanted, on any machine that reaches the same PostgreSQL and holds the
    same master key ring."""
    from segbridge.queueing.app import QUEUES, is_postgresql
    from segbridge.queueing.worker import QueueWorker, WorkerOptions, quiet_queue_logs
    from segbridge.server import configure_logging

    settings = load_settings()
    if not is_postgresql(settings.resolved_database_url):
        raise click.UsageError(NEEDS_POSTGRESQL)
    configure_logging(settings.log_level)
    quiet_queue_logs()
    runtime = build_runtime(settings)
    names = tuple(q.strip() for q in queues.split(",") if q.strip()) if queues else QUEUES
    options = WorkerOptions(concurrency=concurrency or settings.worker_concurrency,
                            queues=names)
    click.echo(f"segbridge: worker on {', '.join(names)} with {options.concurrency} slot(s) "
               f"(data: {settings.home})")
    health = None
    if metrics_port is not None:
        from segbridge.observability.serve import serve_worker_health

        health = serve_worker_health(runtime, metrics_port, metrics_host)
        click.echo(f"segbridge: health and metrics on {metrics_host}:{health.port}")
    freeze_long_lived_objects()  # as serve does: start-up objects out of the collector's way
    try:
        asyncio.run(QueueWorker(runtime, options).run())
    finally:
        if health is not None:
            health.stop()
        runtime.close()
    click.echo("segbridge: worker stopped")

"""``segbridge worker``: execute runs from the job queue (PostgreSQL installs)."""

from __future__ import annotations

import asyncio

import click

from segbridge.cli.context import handles_errors
from segbridge.core.settings import load_settings
from segbridge.runtime import build_runtime

NEEDS_POSTGRESQL = ("segbridge worker needs PostgreSQL (SEGBRIDGE_DATABASE_URL=postgresql+"
                    "psycopg://...): with SQLite, `segbridge serve` executes every run itself.")


@click.command("worker")
@click.option("--concurrency", type=click.IntRange(1, 64), default=None,
              help="Runs executed at once (default: the worker_concurrency setting, 4).")
@click.option("--queues", default=None, metavar="NAMES",
              help="Comma-separated queues to work (default: runs).")
@handles_errors
def command(concurrency: int | None, queues: str | None) -> None:
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
    try:
        asyncio.run(QueueWorker(runtime, options).run())
    finally:
        runtime.close()
    click.echo("segbridge: worker stopped")

"""Running the server: first start, background workers, uvicorn."""

from __future__ import annotations

import logging

import click
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from segbridge.api.routes.hooks import close_webhooks, start_webhooks
from segbridge.assembly import create_app, local_segment_of
from segbridge.core import log_redaction
from segbridge.core.gc_tuning import freeze_long_lived_objects
from segbridge.runtime import Runtime, first_start
from segbridge.sandbox.serving import ShutdownAwareServer
from segbridge.storage.models import Account
from segbridge.workers import Workers

log = logging.getLogger(__name__)


def serve(runtime: Runtime, host: str, port: int) -> None:
    configure_logging(runtime.settings.log_level)
    app = create_app(runtime)
    link = first_start(runtime)
    if link:
        click.echo("segbridge: first start. Sign in as the admin with this one-time link:")
        click.echo(f"    {link}")
    ensure_sandbox_source(app, runtime)
    freeze_long_lived_objects()
    workers = Workers(runtime)
    resumed = workers.start()
    start_webhooks(app)  # records received before a restart are delivered at once
    if resumed:
        click.echo(f"segbridge: resuming {len(resumed)} interrupted run(s)")
    click.echo(f"segbridge: serving on http://{host}:{port}  (data: {runtime.settings.home})")
    try:
        _serve_http(app, host, port, runtime.settings.log_level)
    finally:
        workers.stop()
        close_webhooks(app)
        _close_sandbox(app)
        runtime.close()


def _serve_http(app: FastAPI, host: str, port: int, log_level: str) -> None:
    """uvicorn, telling the local Segment's live Debugger streams to end as soon as it starts
    shutting down (an open Debugger tab would otherwise hold the shutdown)."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(),
                            log_config=log_redaction.uvicorn_log_config(),
                            proxy_headers=False, server_header=False)
    segment = local_segment_of(app)
    ShutdownAwareServer(config, on_shutdown=segment.end_streams if segment else None).run()


def ensure_sandbox_source(app: object, runtime: Runtime) -> None:
    """The first account owns the local Segment's default source, and the sources of a state
    file from before accounts (the receiver's implicit account)."""
    segment = local_segment_of(app)
    if segment is None:
        return
    from segbridge.sandbox.store import IMPLICIT_ACCOUNT

    with runtime.db.session() as session:
        first = session.scalar(select(Account.id).order_by(Account.created_at, Account.id))
    if first is None:
        return
    moved = segment.adopt_sources(IMPLICIT_ACCOUNT, first)
    if moved:
        log.info("the local Segment's %d earlier source(s) now belong to account %s",
                 len(moved), first)
    segment.ensure_default_source(first)


def _close_sandbox(app: object) -> None:
    """A mounted app's lifespan does not run: close the local Segment's state here."""
    segment = local_segment_of(app)
    if segment is not None:
        segment.close()


def configure_logging(level: str) -> None:
    """segbridge's log lines; every handler masks keys and tokens (``core.log_redaction``)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_http_client_logs()
    log_redaction.install()


def quiet_http_client_logs() -> None:
    """httpx logs every request's full URL at INFO, and the Segment source-settings URL
    carries the write key: keep httpx to warnings (and httpcore's wire traces off)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.INFO)

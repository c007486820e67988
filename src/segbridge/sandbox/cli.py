"""``segbridge sandbox``: run the Segment-compatible receiver on its own port."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click
import uvicorn

from segbridge.core.log_redaction import uvicorn_log_config
from segbridge.sandbox.app import create_sandbox_app, ensure_default_source
from segbridge.sandbox.config import SandboxConfig
from segbridge.sandbox.faults import FaultSettings, FaultSettingsError, parse_fault_request
from segbridge.sandbox.serving import ShutdownAwareServer, tune_collector

_FILE = click.Path(path_type=Path, dir_okay=False)
_SHARE = click.FloatRange(0.0, 1.0)


def load_admin_token(path: Path | None) -> str:
    """The token in ``path``; a new one written there (mode 0600) when it does not exist."""
    if path is not None and path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise click.BadParameter("the admin token must be at least 16 characters")
        return token
    token = secrets.token_urlsafe(32)
    if path is not None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
    return token


def _faults(**values: float | int) -> FaultSettings:
    try:
        return parse_fault_request(values)[0]
    except FaultSettingsError as err:
        raise click.UsageError(f"invalid fault options: {err}") from err


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8100, show_default=True, type=click.IntRange(0, 65535))
@click.option("--state", "state_path", type=_FILE, help="SQLite file for sources (else memory).")
@click.option("--archive", "archive_path", type=_FILE, help="NDJSON file of accepted events.")
@click.option("--strict", is_flag=True,
              help="Refuse instead of dropping: 401 for an unknown, missing or short write key "
                   "(as RudderStack), 400 for a request with a bad call.")
@click.option("--admin-token-file", type=_FILE, help="Admin token file (created if missing).")
@click.option("--dedup-capacity", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option("--debugger-size", default=500, show_default=True, type=click.IntRange(1))
@click.option("--workers", default=0, show_default=True, type=click.IntRange(0, 64),
              help="Processes that read batches (gunzip, JSON, validation) besides the "
                   "receiver's own; 0 reads them in the receiver's process.")
@click.option("--fault-500", default=0.0, type=_SHARE, help="Share of requests answered 500.")
@click.option("--fault-503", default=0.0, type=_SHARE, help="Share of requests answered 503.")
@click.option("--fault-429", default=0.0, type=_SHARE, help="Share of requests answered 429.")
@click.option("--retry-after", default=1, type=click.IntRange(0, 3600), help="Retry-After (s).")
@click.option("--latency-ms", default=0, type=click.IntRange(0, 60_000), help="Added latency.")
@click.option("--drop", default=0.0, type=_SHARE, help="Share of connections dropped.")
@click.option("--down-seconds", default=0.0, type=click.FloatRange(0, 86_400), help="Down (503).")
@click.option("--seed", type=int, help="Seed of the fault random source.")
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def sandbox_command(
    host: str,
    port: int,
    state_path: Path | None,
    archive_path: Path | None,
    strict: bool,
    admin_token_file: Path | None,
    dedup_capacity: int,
    debugger_size: int,
    workers: int,
    seed: int | None,
    access_log: bool,
    **fault_options: float | int,
) -> None:
    """Run the Segment-compatible receiver (tracking API, sources, Debugger) alone."""
    names = {"fault_500": "error_500", "fault_503": "error_503", "fault_429": "error_429"}
    faults = _faults(**{names.get(k, k): v for k, v in fault_options.items()})
    token = load_admin_token(admin_token_file)
    config = SandboxConfig(
        state_path=state_path,
        archive_path=archive_path,
        unknown_key_mode="strict" if strict else "segment",
        dedup_capacity=dedup_capacity,
        debugger_size=debugger_size,
        admin_token=token,
        faults=faults,
        fault_seed=seed,
        workers=workers,
    )
    app = create_sandbox_app(config)
    source = ensure_default_source(app)
    base = f"http://{host}:{port}"
    click.echo(f"segbridge sandbox: tracking API at {base}/v1, Debugger at {base}/sources")
    click.echo(f"Source {source.name!r} write key: {source.write_key}")
    click.echo(f"Admin token: {token}")
    if faults.total_share() or faults.latency_ms or faults.down_seconds:
        click.echo(f"Faults on: {faults}")
    server_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",
        http="auto",
        access_log=access_log,
        log_config=uvicorn_log_config(),  # keys in paths masked, query strings dropped
        log_level="info",
        timeout_graceful_shutdown=3,
    )
    # the Debugger's live streams end as soon as the shutdown starts (see ``serving``)
    server = ShutdownAwareServer(server_config, on_shutdown=app.state.sandbox.end_streams)
    if app.state.sandbox.workers is not None:
        app.state.sandbox.workers.start()
        click.echo(f"Batches read by {workers} worker processes")
    tune_collector()
    try:
        server.run()
    finally:
        app.state.sandbox.close()  # again after the lifespan's close: harmless
    if not server.started:
        raise click.ClickException(f"could not serve on {host}:{port}: see the error above")

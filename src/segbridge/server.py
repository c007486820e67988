"""Running the server: first start, the periodic re-test of offline connections, uvicorn."""

from __future__ import annotations

import logging
import threading

import click
import uvicorn

from segbridge.api.app import create_app
from segbridge.runtime import Runtime, first_start

log = logging.getLogger(__name__)


class RetestLoop:
    """Re-tests offline connections every ``interval`` seconds in a background thread."""

    def __init__(self, runtime: Runtime, interval: float) -> None:
        self._runtime = runtime
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retest-offline", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                back = self._runtime.connections.retest_offline()
            except Exception:
                log.exception("re-testing offline connections failed")
            else:
                if back:
                    log.info("%d offline connection(s) came back online", back)


def serve(runtime: Runtime, host: str, port: int) -> None:
    configure_logging(runtime.settings.log_level)
    app = create_app(runtime)
    link = first_start(runtime)
    if link:
        click.echo("segbridge: first start. Sign in as the admin with this one-time link:")
        click.echo(f"    {link}")
    _ensure_sandbox_source(app)
    loop = RetestLoop(runtime, runtime.settings.retest_interval_seconds)
    loop.start()
    click.echo(f"segbridge: serving on http://{host}:{port}  (data: {runtime.settings.home})")
    try:
        uvicorn.run(app, host=host, port=port, log_level=runtime.settings.log_level.lower(),
                    proxy_headers=False, server_header=False)
    finally:
        loop.stop()
        runtime.close()


def _ensure_sandbox_source(app: object) -> None:
    sandbox = getattr(getattr(app, "state", None), "sandbox_app", None)
    if sandbox is None:
        return
    from segbridge.sandbox import ensure_default_source

    ensure_default_source(sandbox)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

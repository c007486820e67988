"""HTTP API passes the application conformance kit, against the test API on loopback (which
checks a bearer token), a port with nothing listening, a ``.invalid`` host and a socket that
never answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from segbridge.apps.base import ConnectionConfig
from segbridge.apps.http.app import HttpApplication
from segbridge.core.secrets import Secret
from tests.integration.apps.http.conftest import connection
from tests.integration.apps.http.shop_api import Fault, shop_api
from tests.kit import ApplicationConformance, Case, Expect, ExportSample, Provoked
from tests.support.receivers import silent_server
from tests.support.servers import unused_port

NO_SUCH_HOST = "segbridge-kit-no-such-host.invalid"
PAGES = {"path": "/pages", "records": "data.items",
         "pagination": {"type": "page", "size": 3}}


KIT_TOKEN = "kit-T0ken/secret"


def bearer(base_url: str, token: str = KIT_TOKEN, **values: str) -> ConnectionConfig:
    return ConnectionConfig({"base_url": base_url, "auth": "bearer", **values},
                            {"token": Secret(token)})


def with_every_secret(config: ConnectionConfig) -> ConnectionConfig:
    """The connection with a value for every secret setting (those its authentication does
    not use as well: they must not show either)."""
    unused = {"password": "unused-Passw0rd", "api_key": "unused-Api-K3y",
              "client_secret": "unused-Client-S3cret"}
    return ConnectionConfig(config.values, {**{k: Secret(v) for k, v in unused.items()},
                                            **config.secrets})


class TestHttpConformance(ApplicationConformance):
    application = HttpApplication()
    expected: ClassVar = {
        Case.REFUSED: Expect("refused"),
        Case.DNS: Expect("dns"),
        Case.TIMEOUT: Expect("timeout"),
        Case.UNAUTHORIZED: Expect("http_401", 401),
        Case.NOT_FOUND: Expect("http_404", 404),
    }
    export_samples = ("pages", "cursor", "incremental")
    failing_exports = ("unreachable", "not_found", "malformed")

    @contextmanager
    def provoke(self, case: Case) -> Iterator[Provoked]:
        if case in (Case.OK, Case.UNAUTHORIZED, Case.NOT_FOUND):
            with shop_api(auth="bearer") as (url, _state):
                config = connection(url, "bearer", test_request="GET /health")
                if case is Case.UNAUTHORIZED:
                    config = bearer(url, "not-the-T0ken", test_request="GET /health")
                elif case is Case.NOT_FOUND:
                    config = connection(url, "bearer", test_request="GET /nothing-here")
                yield Provoked(with_every_secret(config),
                               mentions=() if case is Case.OK else ("127.0.0.1",))
        elif case is Case.REFUSED:
            yield Provoked(bearer(f"http://127.0.0.1:{unused_port()}"), mentions=("127.0.0.1",))
        elif case is Case.DNS:
            yield Provoked(bearer(f"https://{NO_SUCH_HOST}/v1"), mentions=(NO_SUCH_HOST,))
        else:
            with silent_server() as url:
                yield Provoked(bearer(url), mentions=("127.0.0.1",))

    @contextmanager
    def export_sample(self, name: str, folder: Path) -> Iterator[ExportSample]:
        if name == "unreachable":
            yield ExportSample({"type": "http", "path": "/pages", "max_attempts": 1},
                               bearer(f"http://127.0.0.1:{unused_port()}"), fails="refused")
            return
        with shop_api(records=11, auth="bearer") as (url, state):
            config = connection(url, "bearer")
            if name == "not_found":
                yield ExportSample({"type": "http", "path": "/nothing"}, config,
                                   fails="http_404")
            elif name == "malformed":
                state.faults["/pages"] = [Fault(body=b'{"data": {"items": [{"id": 1},')]
                yield ExportSample({"type": "http", **PAGES}, config, fails="malformed_page")
            elif name == "pages":
                yield ExportSample({"type": "http", **PAGES}, config,
                                   between=lambda: state.faults.clear())
            elif name == "cursor":
                yield ExportSample({"type": "http", "path": "/cursor", "records": "items",
                                    "pagination": {"type": "cursor",
                                                   "cursor_path": "meta.next_cursor",
                                                   "cursor_param": "cursor"}}, config)
            else:
                since = {"field": "updated_at", "param": "updated_since"}
                yield ExportSample(
                    {"type": "http", **PAGES, "since": since}, config,
                    saved_cursor={"field": "updated_at", "value": "2026-01-01T00:00:00.002Z"},
                    between=lambda: state.add(4, datetime.now(UTC)))

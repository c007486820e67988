"""Liveness, readiness and who may read /metrics.

* alive: the process answers HTTP (``/healthz``); nothing else is checked, so a slow database
  never gets a live process restarted.
* ready (``readiness``): segbridge's database answers ``SELECT 1``; its Alembic revision is
  the code's head (a process of a newer release waits for ``migrate``, an older one is
  noticed); on PostgreSQL the job queue's table answers too. Each check says ``ok`` or
  ``failed``/``behind``; no URL, host or error text, which could describe the install.
* metrics access (``metrics_refusal``): with ``metrics_token`` set, ``Authorization: Bearer
  <token>`` (compared in constant time) from anywhere; without one, loopback clients only,
  and not through a reverse proxy (a request with a forwarding header is refused).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from dataclasses import dataclass, field
from functools import cache

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import SecretStr
from sqlalchemy import Connection, text

from segbridge.observability.metrics import JOBS_TABLE, STATEMENT_TIMEOUT_MS
from segbridge.storage.db import Database, alembic_config

log = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"
BEHIND = "behind"  # the database's revision is not the code's head
SKIPPED = "skipped"  # not checked, as an earlier check failed


@dataclass(frozen=True)
class Readiness:
    """Each check's outcome: ``database``, ``migrations`` and (PostgreSQL) ``queue``."""

    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(outcome == OK for outcome in self.checks.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, outcome in self.checks.items() if outcome != OK]


def readiness(db: Database) -> Readiness:
    """Check the database, its migrations and (on PostgreSQL) the job queue, in that order."""
    checks = {"database": FAILED, "migrations": SKIPPED}
    postgresql = db.engine.dialect.name == "postgresql"
    if postgresql:
        checks["queue"] = SKIPPED
    try:
        with db.engine.connect() as connection:
            if postgresql:
                connection.execute(text(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            connection.execute(text("SELECT 1"))
            checks["database"] = OK
            checks["migrations"] = _migrations(connection)
            if postgresql:
                checks["queue"] = _queue(connection)
            connection.rollback()
    except Exception as exc:  # not ready, whatever the reason
        log.warning("not ready: %s", type(exc).__name__)  # its text may name the host
    return Readiness(checks)


def _migrations(connection: Connection) -> str:
    current = set(MigrationContext.configure(connection).get_current_heads())
    return OK if current == set(code_heads()) else BEHIND


@cache
def code_heads() -> tuple[str, ...]:
    """The Alembic head(s) of this code (read once per process)."""
    return tuple(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def _queue(connection: Connection) -> str:
    """procrastinate's jobs table answers (in segbridge's database, applied by migrate)."""
    try:
        with connection.begin_nested():
            connection.execute(text(f"SELECT 1 FROM {JOBS_TABLE} LIMIT 1"))  # noqa: S608
    except Exception:  # e.g. the table is missing
        return FAILED
    return OK


@dataclass(frozen=True)
class Refusal:
    """Why /metrics refuses a caller: 401 (no or wrong token) or 403 (not loopback)."""

    status: int
    code: str
    message: str


PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
"""Headers a reverse proxy adds: a loopback peer sending one relays someone else."""


def metrics_refusal(token: SecretStr | None, client_host: str | None,
                    authorization: str | None, *, proxied: bool = False) -> Refusal | None:
    """None when the caller may read /metrics, else why not. ``proxied``: the request
    carries a proxy's forwarding header, so a loopback peer is a proxy relaying a client
    (the server does not trust forwarding headers, so the client's own address is unknown)."""
    if token is not None and token.get_secret_value():
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), token.get_secret_value().encode()):
            return None
        return Refusal(401, "metrics_token_required",
                       "/metrics needs `Authorization: Bearer <metrics token>` "
                       "(the SEGBRIDGE_METRICS_TOKEN setting)")
    if is_loopback(client_host) and not proxied:
        return None
    return Refusal(403, "metrics_loopback_only",
                   "/metrics answers loopback clients only; set SEGBRIDGE_METRICS_TOKEN "
                   "to let a scraper on another machine read it with that bearer token")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:  # e.g. a Unix socket's peer, or a name: not provably loopback
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback

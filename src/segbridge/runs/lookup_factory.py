"""From a flow's lookup steps to opened lookups (``runs.lookups``), through the application of
each lookup's connection (``apps.base.lookup_opener``): this module gathers what the
application is given (the connection's settings and decrypted secrets, the access policy) and
names no application.

A lookup's connection is found in the run's (or the preview's) account only, by the id the
flow stored or by its name: a document naming another account's connection finds nothing.

A step asks in its application's form: a ``query`` (Database) or a ``request`` (HTTP API).
Each application names the fields it reads (``lookup_fields``; one without the attribute
reads the SQL form), so a step in the other form is refused at that field when it is saved.
The connection's concurrency level (its root lender's) goes to the application in the
step's section as ``connection_concurrency``: an HTTP lookup asks that many keys at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from segbridge.apps.base import (
    ConnectionConfig,
    LookupOpener,
    LookupRequest,
    Registry,
    lookup_applications,
    lookup_opener,
)
from segbridge.connections.model import name_key
from segbridge.connections.secret_store import load_secrets
from segbridge.connections.views import effective_concurrency
from segbridge.core.access import access_policy
from segbridge.core.errors import FatalError, FieldProblem
from segbridge.core.settings import Settings
from segbridge.core.vault import Vault
from segbridge.runs.lookups import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_CACHE_TTL,
    KeyCache,
    LookupStep,
    LookupSteps,
)
from segbridge.storage.db import Database
from segbridge.storage.models import Connection


def lookup_sections(steps: Sequence[Mapping[str, Any]]) -> list[tuple[int, Mapping[str, Any]]]:
    """Each lookup step's section, with its index among the flow's steps."""
    return [(index, step["lookup"]) for index, step in enumerate(steps) if "lookup" in step]


def find_lookup_connection(session: Session, account_id: str,
                           lookup: Mapping[str, Any]) -> Connection | None:
    """The lookup's connection in the account: by the id stored with it, else by name."""
    for name_or_id in (lookup.get("connection_id"), lookup.get("connection")):
        if not isinstance(name_or_id, str) or not name_or_id:
            continue
        connection = session.get(Connection, name_or_id)
        if connection is None or connection.account_id != account_id:
            connection = session.scalar(select(Connection).where(
                Connection.account_id == account_id,
                Connection.name_key == name_key(name_or_id)))
        if connection is not None:
            return connection
    return None


def lookup_connection_problems(session: Session, account_id: str, registry: Registry,
                               lookup: Mapping[str, Any], field: str
                               ) -> tuple[Connection | None, list[FieldProblem]]:
    """The lookup's connection, or why it cannot answer this lookup (at ``field``)."""
    connection = find_lookup_connection(session, account_id, lookup)
    if connection is None:
        return None, [FieldProblem(f"{field}.connection", f"no connection named "
                                   f"'{lookup.get('connection')}' in your account; create it "
                                   "first (Resources > Connections)")]
    opener = _opener(registry, connection.application)
    if opener is None:
        choices = " or ".join(lookup_applications(registry)) or "none installed"
        return None, [FieldProblem(f"{field}.connection", f"'{connection.name}' is a "
                                   f"{connection.application} connection, which cannot answer "
                                   f"lookups; choose a connection of: {choices}")]
    wrong = _form_problems(opener, connection, lookup, field)
    return connection, wrong or opener.lookup_problems(lookup, field)


SQL_FORM = ("query", "key_column")  # what an application without ``lookup_fields`` reads
LOOKUP_FORMS = ("query", "key_column", "request", "result")
CONCURRENCY_KEY = "connection_concurrency"


def _form_problems(opener: LookupOpener, connection: Connection, lookup: Mapping[str, Any],
                   field: str) -> list[FieldProblem]:
    """The fields of the other form a step gives (a request to a Database connection)."""
    reads = tuple(getattr(opener, "lookup_fields", SQL_FORM))
    return [FieldProblem(f"{field}.{name}", f"a lookup through '{connection.name}' "
                         f"({opener.name}) takes {' and '.join(reads)}, not {name}; write "
                         f"{reads[0]}, or choose a connection that answers {name}")
            for name in LOOKUP_FORMS if name not in reads and lookup.get(name) is not None]


def _opener(registry: Registry, application: str) -> LookupOpener | None:
    try:
        return lookup_opener(registry, application)
    except FatalError:
        return None


def open_lookup_steps(db: Database, vault: Vault, settings: Settings, registry: Registry,
                      account_id: str, steps: Sequence[Mapping[str, Any]]) -> LookupSteps:
    """The flow's lookups, opened (none: an empty ``LookupSteps``); a lookup that cannot be
    opened closes those opened before it."""
    opened: list[LookupStep] = []
    try:
        for index, lookup in lookup_sections(steps):
            opened.append(_open(db, vault, settings, registry, account_id, lookup,
                                f"steps.{index}.lookup"))
    except BaseException:
        LookupSteps(opened).close()
        raise
    return LookupSteps(opened)


def _open(db: Database, vault: Vault, settings: Settings, registry: Registry, account_id: str,
          lookup: Mapping[str, Any], field: str) -> LookupStep:
    with db.session() as session:
        connection, problems = lookup_connection_problems(session, account_id, registry,
                                                          lookup, field)
        if connection is None or problems:
            raise FatalError(f"The lookup '{lookup.get('name')}' cannot run: "
                             + "; ".join(f"{p.field}: {p.message}" for p in problems),
                             cause="config")
        opener = lookup_opener(registry, connection.application)
        config = ConnectionConfig(dict(connection.settings),
                                  load_secrets(session, vault, connection))
        level = effective_concurrency(session, connection).level
    lookup = {**lookup, CONCURRENCY_KEY: level}
    request = LookupRequest(lookup=lookup, params=tuple(dict(lookup.get("params") or {})),
                            connection=config, policy=access_policy(settings), field=field)
    return lookup_step(opener, request)


def lookup_step(opener: LookupOpener, request: LookupRequest) -> LookupStep:
    """A lookup step opened by its application (a run's, a preview's or a lane's)."""
    lookup = request.lookup
    params = dict(lookup.get("params") or {})
    cache = dict(lookup.get("cache") or {})
    return LookupStep(name=str(lookup["name"]),
                      params=tuple(tuple(str(path).split(".")) for path in params.values()),
                      lookup=opener.open_lookup(request),
                      on_missing=str(lookup.get("on_missing", "leave_empty")),
                      cache=KeyCache(int(cache.get("size", DEFAULT_CACHE_SIZE)),
                                     float(cache.get("ttl_seconds", DEFAULT_CACHE_TTL))),
                      opened_by=(opener.key, request))

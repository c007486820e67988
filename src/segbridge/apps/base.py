"""What an application declares: its settings (which are secret) and what it can do.

An application is the plugin boundary: one folder under ``apps/`` and one line in
``apps/registry.py``. Every application declares its settings, ``targets`` and ``ping``; one
that can be a source also declares ``export_models`` (the model of each export kind's section of
the flow document), ``export_kinds`` and ``open_export`` (``Exporter``); one that
can be a destination declares ``open_sink`` (``SinkOpener``). Its ``capabilities`` say which,
and the ``Registry`` consults them, so the run engine, the plan, the service and the CLI never
name an application nor one of its settings.

Applications may import ``exports`` (the source contract) and ``sinks`` (the destination
contract), never ``runs`` (the engine) nor ``flows``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from segbridge.concurrency.governor import Governor
from segbridge.core.access import AccessPolicy, Targets
from segbridge.core.errors import FatalError, FieldProblem
from segbridge.core.secrets import Secret
from segbridge.exports.contracts import Export
from segbridge.exports.document import ExportBase
from segbridge.exports.limits import RecordLimits
from segbridge.sinks.contracts import Reachability, RetryPolicy, Sink, Sleep


class Capability(StrEnum):
    PING = "ping"
    EXPORT = "export"
    IMPORT = "import"
    LOOKUP = "lookup"
    LISTEN = "listen"


class SettingKind(StrEnum):
    TEXT = "text"
    SECRET = "secret"  # noqa: S105 - a kind of setting
    CHOICE = "choice"
    URL = "url"


@dataclass(frozen=True)
class SettingSpec:
    """One setting of an application's connection, as the Create connection pane shows it."""

    name: str
    label: str
    kind: SettingKind
    required: bool = False
    advanced: bool = False
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    default: str | None = None
    max_length: int = 2000

    @property
    def secret(self) -> bool:
        return self.kind is SettingKind.SECRET

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "kind": self.kind.value,
            "required": self.required,
            "advanced": self.advanced,
            "secret": self.secret,
            "help": self.help,
            "choices": [{"value": v, "label": label} for v, label in self.choices],
            "default": self.default,
        }


@dataclass(frozen=True)
class ConnectionConfig:
    """A connection's settings split into plain values and secrets (decrypted for use)."""

    values: Mapping[str, str | None]
    secrets: Mapping[str, Secret]
    # the connection's rate limit (its root lender's: a borrower shares it); the engine's
    # governor applies it to imports, an export applies it to its own requests
    requests_per_second: float | None = None


@dataclass(frozen=True)
class Check:
    """One line of a test result that is not the ping itself (e.g. the write-key check)."""

    name: str
    outcome: str  # e.g. "recognised", "not_recognised", "could_not_check"
    label: str  # honestly worded, for people
    detail: str = ""

    def public(self) -> dict[str, str]:
        return {"name": self.name, "outcome": self.outcome, "label": self.label,
                "detail": self.detail}


@dataclass(frozen=True)
class PingResult:
    """The outcome of Test connection."""

    ok: bool
    endpoint: str
    status: int | None
    latency_ms: float
    message_id: str | None
    cause: str | None = None  # a short code: dns, refused, tls, timeout, http_401, ...
    message: str = ""  # what happened, in words a user can act on
    checks: tuple[Check, ...] = ()
    debugger_hint: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "endpoint": self.endpoint,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 1),
            "message_id": self.message_id,
            "cause": self.cause,
            "message": self.message,
            "checks": [c.public() for c in self.checks],
            "debugger_hint": self.debugger_hint,
        }


class Application(Protocol):
    """An entry of the Application list.

    ``connectable`` is False for an application that has no connection (Files: a file is
    named in the flow itself); it is not offered where a user picks an application for a
    connection."""

    key: str
    name: str
    description: str
    capabilities: frozenset[Capability]
    settings: tuple[SettingSpec, ...]

    def validate(self, values: Mapping[str, str | None]) -> list[FieldProblem]:
        """Application-specific checks beyond each setting's own (kind, required, length)."""

    def targets(self, values: Mapping[str, str | None]) -> Targets:
        """The files and URLs a connection with these settings reads or calls, so the
        install's access policy can be checked before any of them is touched."""

    def ping(self, config: ConnectionConfig, *, timeout: float) -> PingResult:
        """Test the connection for real."""


UploadResolver = Callable[[str], Path]
"""An upload id of the run's account -> the file the server stored it at (NotFound if none)."""


@dataclass(frozen=True)
class ResumeState:
    """What a run saved before: the bounds it started with (when resumed) and the cursor the
    flow's last successful run stored (``{"column": ..., "value": ...}``)."""

    saved_bounds: Mapping[str, Any] | None = None
    saved_cursor: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ExportRequest:
    """Everything an application needs to open a source for a run or a preview.

    ``export`` is the export section of the flow document (``type``, and the kind's own
    fields). ``connection`` is the export's connection (None for an export without one).
    ``preview`` asks for every record with nothing saved (no incremental window)."""

    export: Mapping[str, Any]
    connection: ConnectionConfig | None
    policy: AccessPolicy
    limits: RecordLimits
    uploads: UploadResolver
    resume: ResumeState = field(default_factory=ResumeState)
    preview: bool = False
    reads: frozenset[str] | None = None  # the record's top-level fields the run needs (an
    # export may leave out the others: Parquet's columns); None: every field


@dataclass(frozen=True)
class LaneSource:
    """A file that lane processes can split into blocks and re-open each on its own."""

    kind: str
    path: Path
    options: Mapping[str, Any]
    read_bytes: int | None = None  # what reading it costs when its size on disk does not
    # say (a compressed Parquet file: its rows' decoded size); None: its size on disk


@dataclass(frozen=True)
class OpenedExport:
    """An opened source, what the run must save now (``bounds``, so a resumed run reads the
    same window) and the cursor to store on the flow after the run succeeds."""

    export: Export
    bounds: Mapping[str, Any] | None = None
    cursor_after: Mapping[str, Any] | None = None
    lanes: LaneSource | None = None


@dataclass(frozen=True)
class SinkRequest:
    """Everything an application needs to open one import's destination for a run."""

    connection: ConnectionConfig
    import_name: str
    http: httpx.AsyncClient
    governor: Governor
    pool: str  # the governor pool of the connection's root lender
    reachability: Reachability
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = asyncio.sleep


@runtime_checkable
class Exporter(Protocol):
    """An application that can be a source (Capability.EXPORT)."""

    key: str
    name: str
    export_kinds: frozenset[str]  # the flow document's export types it opens
    # each kind's export section of the flow document (``type: Literal["<kind>"]``)
    export_models: Mapping[str, type[ExportBase]]

    def open_export(self, request: ExportRequest) -> OpenedExport:
        """Open the export (checking paths and addresses against ``request.policy``)."""
        ...


@runtime_checkable
class SinkOpener(Protocol):
    """An application that can be a destination (Capability.IMPORT)."""

    key: str
    name: str

    def targets(self, values: Mapping[str, str | None]) -> Targets:
        """What a connection with these settings calls (checked before a sink opens)."""
        ...

    def open_sink(self, request: SinkRequest) -> Sink:
        """Open one import's sink for a run (nothing is sent yet)."""
        ...


LookupKey = tuple[Any, ...]
"""The values a record gives a lookup's parameters, in the order of ``LookupRequest.params``."""
LookupRow = Mapping[str, Any]
"""What a lookup found for one key (a row: column -> value)."""


@dataclass(frozen=True)
class LookupRequest:
    """Everything an application needs to open a flow's lookup step for a run or a preview.

    ``lookup`` is the step's section of the flow document (e.g. ``query`` and ``key_column``
    for a database, a request for HTTP); ``params`` names its parameters in the order of the
    keys ``find_many`` is given; ``field`` is where a user fixes the step
    (``steps.0.lookup``)."""

    lookup: Mapping[str, Any]
    params: tuple[str, ...]
    connection: ConnectionConfig
    policy: AccessPolicy
    field: str


class Lookup(Protocol):
    """An opened lookup (Capability.LOOKUP): the rows of another system for records' keys.

    The engine gives ``find_many`` up to ``batch_size`` distinct keys at a time, so an
    application answers a batch as it can (a database: one ``WHERE key IN (...)`` query; HTTP:
    one request per key within the connection's concurrency). A key without a result maps to
    None. A failure to reach the system raises ``RetriableError`` (the engine tries again,
    then fails the run); anything else wrong (the query, the request) a ``FatalError``."""

    batch_size: int

    def find_many(self, keys: Sequence[LookupKey]) -> Mapping[LookupKey, LookupRow | None]:
        """The row of each key (None: nothing found)."""
        ...

    def close(self) -> None:
        """Release connections (the run or the preview is over)."""
        ...


@runtime_checkable
class LookupOpener(Protocol):
    """An application whose connections can answer lookups (Capability.LOOKUP)."""

    key: str
    name: str

    def targets(self, values: Mapping[str, str | None]) -> Targets:
        """What a connection with these settings reaches (checked before a lookup opens)."""
        ...

    def lookup_problems(self, lookup: Mapping[str, Any], field: str) -> list[FieldProblem]:
        """What is wrong with a lookup step's application part, each at its field."""
        ...

    def open_lookup(self, request: LookupRequest) -> Lookup:
        """Open a lookup (checking what it reaches against ``request.policy``)."""
        ...


def lookup_opener(registry: Registry, application_key: str) -> LookupOpener:
    """The application a lookup's connection of ``application_key`` asks."""
    app = registry.applications.get(application_key)
    if app is None:
        raise CannotDoThat(f"Unknown application '{application_key}'.")
    if Capability.LOOKUP not in app.capabilities or not isinstance(app, LookupOpener):
        raise CannotDoThat(f"A {app.name} connection cannot answer lookups; a lookup needs a "
                           "connection of an application that can (e.g. Database).")
    return app


def lookup_applications(registry: Registry) -> list[str]:
    """The names of the applications a lookup's connection may be made to."""
    return [app.name for app in registry.all() if Capability.LOOKUP in app.capabilities
            and isinstance(app, LookupOpener)]


class CannotDoThat(FatalError):
    """An application was asked for something it cannot do (export, import) or is unknown."""

    code = "application_cannot"

    def __init__(self, message: str) -> None:
        super().__init__(message, cause="config")


@dataclass
class Registry:
    """The Application list."""

    applications: dict[str, Application] = field(default_factory=dict)

    def add(self, application: Application) -> None:
        self.applications[application.key] = application

    def get(self, key: str) -> Application | None:
        """The application a connection of ``key`` is made to (None for one without
        connections, like Files: nobody makes a connection to it)."""
        app = self.applications.get(key)
        return app if app is not None and is_connectable(app) else None

    def all(self) -> list[Application]:
        """The Application list a user picks from for a connection (UI, API, CLI)."""
        return [app for app in self.applications.values() if is_connectable(app)]

    def everything(self) -> list[Application]:
        """Every application, those without a connection included."""
        return list(self.applications.values())

    def export_kinds(self) -> list[str]:
        """Every export type a flow document may name, in registry order."""
        return list(self.export_models())

    def export_models(self) -> dict[str, type[ExportBase]]:
        """Each export type's section of the flow document, in registry order (the flow
        document's union of export kinds, and the order its messages list them in)."""
        return {kind: model for app in self._exporters()
                for kind, model in app.export_models.items()}

    def _exporters(self) -> list[Exporter]:
        return [app for app in self.applications.values() if isinstance(app, Exporter)
                and Capability.EXPORT in app.capabilities]

    def exporter(self, kind: str) -> Exporter:
        """The application that opens exports of this type."""
        for app in self._exporters():
            if kind in app.export_kinds:
                return app
        raise CannotDoThat(f"No application exports '{kind}'; use one of: "
                           f"{', '.join(self.export_kinds())}.")

    def sink(self, application_key: str) -> SinkOpener:
        """The application a connection of ``application_key`` sends to."""
        app = self.applications.get(application_key)
        if app is None:
            raise CannotDoThat(f"Unknown application '{application_key}'.")
        if Capability.IMPORT not in app.capabilities or not isinstance(app, SinkOpener):
            raise CannotDoThat(f"A {app.name} connection cannot receive records; an import "
                               "needs a connection of an application that can (e.g. Segment).")
        return app


def is_connectable(app: Application | Exporter | SinkOpener) -> bool:
    """False for an application without a connection (it says so with ``connectable``)."""
    return bool(getattr(app, "connectable", True))

"""What an application declares: its settings (which are secret) and what it can do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from segbridge.core.access import Targets
from segbridge.core.errors import FieldProblem
from segbridge.core.secrets import Secret


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
    """An entry of the Application list."""

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


@dataclass
class Registry:
    """The Application list."""

    applications: dict[str, Application] = field(default_factory=dict)

    def add(self, application: Application) -> None:
        self.applications[application.key] = application

    def get(self, key: str) -> Application | None:
        return self.applications.get(key)

    def all(self) -> list[Application]:
        return list(self.applications.values())

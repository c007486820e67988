"""The "how to add an application" example of docs/architecture.md, kept true: a destination
in a dozen lines is offered by the registry and delivers, with nothing else edited."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import httpx

from segbridge.apps.base import (
    Application,
    Capability,
    ConnectionConfig,
    PingResult,
    Registry,
    SettingKind,
    SettingSpec,
    SinkOpener,
    SinkRequest,
)
from segbridge.concurrency.governor import LocalGovernor
from segbridge.core.access import Targets
from segbridge.core.errors import FieldProblem
from segbridge.core.secrets import Secret
from segbridge.sinks.calls import Item
from segbridge.sinks.contracts import Outcome, Reachability, Sink


class EchoSink:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def deliver(self, items: Sequence[Item]) -> Outcome:
        self.bodies.extend(item.body for item in items)
        return Outcome(sent=len(items), requests=1)


class EchoApplication:
    key, name, description = "echo", "Echo", "Keeps every call it is sent."
    capabilities = frozenset({Capability.PING, Capability.IMPORT})
    settings: tuple[SettingSpec, ...] = (
        SettingSpec("token", "Token", SettingKind.SECRET, required=True),)

    def validate(self, values: Mapping[str, str | None]) -> list[FieldProblem]:
        return []

    def targets(self, values: Mapping[str, str | None]) -> Targets:
        return Targets()

    def ping(self, config: ConnectionConfig, *, timeout: float) -> PingResult:
        return PingResult(ok=True, endpoint="echo:", status=None, latency_ms=0.0,
                          message_id=None)

    def open_sink(self, request: SinkRequest) -> Sink:
        return EchoSink()


def test_a_minimal_destination_is_one_class_and_one_registry_line() -> None:
    application: Application = EchoApplication()  # the protocols hold (mypy checks)
    registry = Registry()
    registry.add(application)
    opener: SinkOpener = registry.sink("echo")
    assert [app.key for app in registry.all()] == ["echo"]

    async def deliver() -> Outcome:
        async def nothing(*_args: object) -> None:
            return None

        async with httpx.AsyncClient() as http:
            sink = opener.open_sink(SinkRequest(
                connection=ConnectionConfig({}, {"token": Secret("t0ken")}),
                import_name="Echo", http=http, governor=LocalGovernor(), pool="c1",
                reachability=Reachability(unreachable=nothing, reachable=nothing)))
            return await sink.deliver([Item(0, "line 1", b'{"type":"track"}')])

    outcome = asyncio.run(deliver())
    assert (outcome.sent, outcome.errors) == (1, [])

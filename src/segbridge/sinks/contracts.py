"""The contract between the run engine and a sink: ``deliver(items) -> Outcome``.

A sink sends one import's calls to its destination and accounts for every one of them: each
call ends as sent, or as a ``CallError`` (a record error with its reason and status). A sink
raises ``RunFailed`` only when nothing more can be sent (a rejected key, a wrong endpoint).
While the destination cannot be reached it waits, telling the run through ``Reachability``.

Applications implement it (``apps/<name>/``); the run engine (``runs/``) calls it. Neither
imports the other: both import this module.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from segbridge.core.errors import ApplicationError
from segbridge.sinks.calls import Item

Sleep = Callable[[float], Awaitable[None]]
"""How a sink waits (``asyncio.sleep``; tests give one that takes no real time)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a sink tries before a call becomes a (retriable) record error."""

    max_attempts: int = 8  # for 5xx and 429 before the calls become retriable record errors
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    pause_after: int = 4  # network failures in a row before the connection is called offline
    probe_seconds: float = 5.0
    gzip_level: int = 3

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 300.0)
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** attempt))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(slots=True)
class CallError:
    """A call that was not sent: why, the destination's status, and whether to retry it."""

    item: Item
    reason: str
    status: int | None
    retriable: bool


@dataclass
class Outcome:
    """What happened to one batch."""

    sent: int = 0
    retried: int = 0
    requests: int = 0
    bytes: int = 0
    errors: list[CallError] = field(default_factory=list)


class RunFailed(Exception):
    """The run cannot go on (write key rejected, wrong endpoint): nothing more is sent."""

    def __init__(self, error: ApplicationError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class Reachability:
    """Hooks the engine gives: called once when the receiver becomes unreachable and back."""

    unreachable: Callable[[ApplicationError], Awaitable[None]]
    reachable: Callable[[], Awaitable[None]]


class Sink(Protocol):
    """One import's destination, opened for one run."""

    async def deliver(self, items: Sequence[Item]) -> Outcome:
        """Send these calls; every one ends sent or as an error in the outcome."""
        ...

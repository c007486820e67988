"""A sink (``Capability.IMPORT``), as every destination must pass it: a request the
destination refuses as invalid (400) or too large (413) is split until the bad calls stand
alone, failures on the way are retried (a destination down for a while is waited out, one
that cannot be reached pauses the run until it can), a destination that keeps failing turns
every call into an error to retry, a rejected key ends the run with advice; and no call is
ever lost: each ends as sent (and the destination has it, once) or as an error with its reason
and status. No secret shows in the errors, the sink's repr or the logs.

An application's test class gives ``destination(trouble, clock)``, a real destination on loopback
that behaves as the ``Trouble`` says, and ``call(call_id, valid=...)``, the wire JSON of one
call the destination will know by ``call_id`` (and refuse when not valid). The kit sends
calls through ``open_sink`` with a sleep that takes no real time, as plain items and as the
packed calls lane processes hand over; the sink, its governor and the destination share a
simulated clock, so "down for 20 s" takes no 20 real seconds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

import httpx
import pytest

from segbridge.apps.base import Application, Capability, ConnectionConfig, SinkOpener, SinkRequest
from segbridge.concurrency.governor import LocalGovernor
from segbridge.core.clock import SimulatedClock
from segbridge.core.errors import ApplicationError
from segbridge.sinks.calls import Item, PackedCalls
from segbridge.sinks.contracts import Outcome, Reachability, RetryPolicy, RunFailed
from tests.kit.connection import ACTION
from tests.kit.secrets import captured_logs, leaks, secret_forms, written_lines

TOO_LARGE_OVER = 4  # a TOO_LARGE destination answers 413 to a request of more calls
DOWN_SECONDS = 20.0  # how long a DOWN or UNREACHABLE destination is out, on the kit's clock
CALLS = 24
INVALID = (3, 10, 11, 23)  # the calls a REFUSES_INVALID destination must refuse
POOL = "kit"


class Trouble(StrEnum):
    """How a destination misbehaves for one check."""

    REFUSES_INVALID = "400"  # answers 400 to any request that holds an invalid call
    TOO_LARGE = "413"  # answers 413 to any request of more than TOO_LARGE_OVER calls
    FLAKY = "flaky"  # answers some requests 5xx or 429, drops some connections
    DOWN = "down"  # answers every request 503 for DOWN_SECONDS (on the clock given), then works
    UNREACHABLE = "unreachable"  # nothing listens for DOWN_SECONDS (on the clock), then it does
    BROKEN = "500"  # answers every request 500
    KEY_REJECTED = "401"  # refuses the connection's credentials


@dataclass(frozen=True)
class Destination:
    """A destination on loopback: the connection to it and the ids of the calls it kept (as
    many times as it kept each)."""

    connection: ConnectionConfig
    kept: Callable[[], list[str]]


@dataclass
class Delivered:
    """One delivery: its outcome (or the RunFailed that ended it), what the destination kept,
    the waits the sink asked for, the reachability events and the log lines."""

    items: list[Item]
    outcome: Outcome | None
    failed: RunFailed | None
    kept: list[str]
    waits: list[float] = field(default_factory=list)
    reach: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    sink_repr: str = ""


class SinkKit:
    """Fill in ``destination`` and ``call`` (and ``sink_not_applicable`` for a trouble the
    application's destinations cannot show, with why)."""

    application: ClassVar[Application]
    sink_not_applicable: ClassVar[Mapping[Trouble, str]] = {}

    def destination(self, trouble: Trouble,
                    clock: SimulatedClock) -> AbstractContextManager[Destination]:
        """A destination with this trouble; DOWN and UNREACHABLE measure their time out on
        ``clock``, the simulated clock the sink waits on."""
        raise NotImplementedError(f"{type(self).__name__}: destination({trouble!r})")

    def call(self, call_id: str, *, valid: bool = True) -> bytes:
        raise NotImplementedError(f"{type(self).__name__}: call()")

    def sink_opener(self, trouble: Trouble) -> SinkOpener:
        if Capability.IMPORT not in self.application.capabilities:
            pytest.skip(f"{self.application.name} is not a destination (no IMPORT capability)")
        if trouble in self.sink_not_applicable:
            pytest.skip(f"{trouble.value} does not apply: {self.sink_not_applicable[trouble]}")
        assert isinstance(self.application, SinkOpener), "IMPORT declared, open_sink missing"
        return self.application

    def deliver(self, trouble: Trouble, packed: bool, invalid: Sequence[int] = ()) -> Delivered:
        """The kit's calls (those numbered in ``invalid`` invalid) through a sink to a
        destination with this trouble."""
        opener = self.sink_opener(trouble)
        items = [Item(n, f"row {n + 1}", self.call(call_id(n), valid=n not in invalid))
                 for n in range(CALLS)]
        clock = SimulatedClock()
        with self.destination(trouble, clock) as destination, captured_logs() as logs:
            delivered = asyncio.run(
                _deliver(opener, destination.connection, items, packed, clock))
            delivered.kept = destination.kept()
        delivered.log_lines = written_lines(logs.records)
        secrets = destination.connection.secrets.values()
        reasons = [e.reason for e in delivered.outcome.errors] if delivered.outcome else []
        shown = [str(delivered.failed or ""), repr(delivered.failed), delivered.sink_repr,
                 *reasons]
        assert not leaks(shown + delivered.log_lines, secret_forms(secrets)), "a secret shows"
        return delivered

    def test_sink_capability_is_declared_with_open_sink(self) -> None:
        can = Capability.IMPORT in self.application.capabilities
        assert can == isinstance(self.application, SinkOpener)

    @pytest.mark.parametrize("packed", [False, True], ids=["items", "packed"])
    def test_a_sink_isolates_the_calls_a_destination_refuses(self, packed: bool) -> None:
        delivered = self.deliver(Trouble.REFUSES_INVALID, packed, INVALID)
        nothing_lost(delivered)
        assert delivered.outcome is not None
        errors = {e.item.position: e for e in delivered.outcome.errors}
        assert sorted(errors) == list(INVALID), "exactly the invalid calls are errors"
        for error in errors.values():
            assert (error.status, error.retriable) == (400, False)
            assert error.reason, "an error says why"
        assert delivered.outcome.sent == CALLS - len(INVALID)

    @pytest.mark.parametrize("packed", [False, True], ids=["items", "packed"])
    def test_a_sink_splits_a_request_too_large(self, packed: bool) -> None:
        delivered = self.deliver(Trouble.TOO_LARGE, packed)
        nothing_lost(delivered)
        assert delivered.outcome is not None
        assert (delivered.outcome.sent, delivered.outcome.errors) == (CALLS, [])

    @pytest.mark.parametrize("packed", [False, True], ids=["items", "packed"])
    def test_a_sink_retries_a_flaky_destination_and_loses_nothing(self, packed: bool) -> None:
        delivered = self.deliver(Trouble.FLAKY, packed, INVALID)
        nothing_lost(delivered)
        assert delivered.outcome is not None
        assert delivered.outcome.retried > 0, "the destination was not flaky"
        assert delivered.waits, "a retry waits (through the sleep it was given)"

    def test_a_sink_waits_out_a_destination_that_is_down(self) -> None:
        delivered = self.deliver(Trouble.DOWN, packed=False)
        nothing_lost(delivered)
        assert delivered.outcome is not None
        assert (delivered.outcome.sent, delivered.outcome.errors) == (CALLS, [])
        assert sum(delivered.waits) >= DOWN_SECONDS, "the sink did not wait it out"

    def test_a_sink_pauses_while_the_destination_is_unreachable(self) -> None:
        delivered = self.deliver(Trouble.UNREACHABLE, packed=False)
        nothing_lost(delivered)
        assert delivered.outcome is not None
        assert (delivered.outcome.sent, delivered.outcome.errors) == (CALLS, [])
        assert delivered.reach == ["unreachable: refused", "reachable"]

    def test_a_sink_that_gives_up_keeps_every_call_as_an_error_to_retry(self) -> None:
        delivered = self.deliver(Trouble.BROKEN, packed=True)
        nothing_lost(delivered)
        assert delivered.outcome is not None
        assert delivered.outcome.sent == 0
        assert {(e.status, e.retriable) for e in delivered.outcome.errors} == {(500, True)}

    def test_a_rejected_key_stops_the_run_and_sends_nothing(self) -> None:
        delivered = self.deliver(Trouble.KEY_REJECTED, packed=False)
        assert delivered.failed is not None, "a rejected key must end the run (RunFailed)"
        error = delivered.failed.error
        assert error.status in (401, 403) and error.cause
        assert ACTION.search(error.message), f"no advice in: {error.message!r}"
        assert delivered.kept == []


def call_id(number: int) -> str:
    return f"kit-call-{number:04d}"


def nothing_lost(delivered: Delivered) -> None:
    """Every call is sent (and kept by the destination, once) or an error with a reason."""
    assert delivered.failed is None, f"the run failed: {delivered.failed}"
    assert delivered.outcome is not None
    outcome = delivered.outcome
    failed = [e.item.position for e in outcome.errors]
    assert len(failed) == len(set(failed)), "a call is an error twice"
    assert outcome.sent + len(failed) == len(delivered.items), "calls unaccounted for"
    sent = {call_id(item.position) for item in delivered.items} - {call_id(p) for p in failed}
    kept = Counter(delivered.kept)
    assert set(kept) == sent, "the destination's calls differ from the ones called sent"
    assert all(count == 1 for count in kept.values()), f"kept twice: {kept.most_common(3)}"
    assert all(e.reason and e.status is not None for e in outcome.errors)


async def _deliver(opener: SinkOpener, connection: ConnectionConfig, items: list[Item],
                   packed: bool, clock: SimulatedClock) -> Delivered:
    delivered = Delivered(items, None, None, [])

    async def no_wait(seconds: float) -> None:
        delivered.waits.append(seconds)
        await clock.sleep(seconds)

    async def unreachable(error: ApplicationError) -> None:
        delivered.reach.append(f"unreachable: {error.cause}")

    async def reachable() -> None:
        delivered.reach.append("reachable")

    governor = LocalGovernor(clock)
    governor.configure(POOL, 4)
    async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
        sink = opener.open_sink(SinkRequest(
            connection, "kit import", http, governor, POOL,
            Reachability(unreachable, reachable), RetryPolicy(), no_wait))
        delivered.sink_repr = repr(sink)
        batch: Sequence[Item] = PackedCalls.pack(items) if packed else items
        try:
            delivered.outcome = await sink.deliver(batch)
        except RunFailed as failed:
            delivered.failed = failed
    return delivered


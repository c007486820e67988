"""Test connection, as every application that declares ``Capability.PING`` must pass it.

An application's test class says which failures apply to it and how to provoke each for real
(a loopback port with nothing listening, a host under ``.invalid``, a loopback server that
never answers, a server that refuses who we are or does not know what we ask for); the kit
pings and checks that the result names the cause with its code, says what to do in words,
comes back within the timeout, and shows no secret (nor do the log records of the ping).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import pytest

from segbridge.apps.base import Application, Capability, ConnectionConfig, PingResult
from segbridge.core.secrets import Secret
from tests.kit.secrets import captured_logs, leaks, raw_lines, secret_forms, written_lines


class Case(StrEnum):
    """The outcomes of Test connection that every application is checked for."""

    OK = "ok"
    REFUSED = "refused"  # nothing listens at the address
    DNS = "dns"  # the host name does not resolve
    TIMEOUT = "timeout"  # something accepts the connection and never answers
    UNAUTHORIZED = "401"  # the server refuses who we are (HTTP 401, a wrong password)
    NOT_FOUND = "404"  # the server is there, what we ask for is not (HTTP 404, no such db)


FAILURES = tuple(case for case in Case if case is not Case.OK)


@dataclass(frozen=True)
class Provoked:
    """A connection that provokes one case: its config, the timeout to ping with, and the
    words the result's message must contain (the host, the address, the database)."""

    config: ConnectionConfig
    timeout: float = 0.3
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Expect:
    """What a failing case must answer: its cause code, and its HTTP status if it has one."""

    cause: str
    status: int | None = None


@dataclass(frozen=True)
class Pinged:
    """One ping of a provoked case, with what it logged."""

    provoked: Provoked
    result: PingResult
    seconds: float
    raw_logs: list[tuple[str, str]]  # (logger, line) before any filter
    written_logs: list[str]  # as the install's log filter lets them through


# Words that tell a person what to do next ("Check the host name", "Copy it again").
ACTION = re.compile(r"\b(check|copy|choose|try|fix|make sure|enter|ask|start|use)\b",
                    re.IGNORECASE)
_PINGS: dict[tuple[type, Case], Pinged] = {}


class ConnectionKit:
    """Subclass it (through ``ApplicationConformance``) and fill in:

    * ``application``: the application under test;
    * ``expected``: for each failing case that applies, the cause code (and status) it gives;
    * ``not_applicable``: for each case that does not apply, why;
    * ``provoke(case)``: a context manager that yields a ``Provoked`` connection for the case
      (starting and stopping whatever server it needs).
    """

    application: ClassVar[Application]
    expected: ClassVar[Mapping[Case, Expect]] = {}
    not_applicable: ClassVar[Mapping[Case, str]] = {}

    def provoke(self, case: Case) -> AbstractContextManager[Provoked]:
        raise NotImplementedError(f"{type(self).__name__}: provoke({case!r}) is not written")

    def pinged(self, case: Case) -> Pinged:
        """The case pinged once per test class (two tests read the same ping)."""
        key = (type(self), case)
        if key not in _PINGS:
            _PINGS[key] = self._ping(case)
        return _PINGS[key]

    def _ping(self, case: Case) -> Pinged:
        with self.provoke(case) as provoked, captured_logs() as logs:
            started = time.perf_counter()
            result = self.application.ping(provoked.config, timeout=provoked.timeout)
            seconds = time.perf_counter() - started
        raw = list(zip([r.name for r in logs.records], raw_lines(logs.records), strict=True))
        return Pinged(provoked, result, seconds, raw, written_lines(logs.records))

    def skip_unless_pinged(self, case: Case) -> None:
        if Capability.PING not in self.application.capabilities:
            pytest.skip(f"{self.application.name} has no Test connection (no PING capability)")
        if case in self.not_applicable:
            pytest.skip(f"{case.value} does not apply: {self.not_applicable[case]}")

    def test_every_connection_case_is_declared(self) -> None:
        if Capability.PING not in self.application.capabilities:
            assert not self.expected, "expected causes given for an application without PING"
            return
        declared = {Case.OK, *self.expected}
        assert not declared & set(self.not_applicable), "a case both expected and not applicable"
        missing = set(Case) - declared - set(self.not_applicable)
        assert not missing, f"declare in expected or not_applicable: {sorted(missing)}"

    @pytest.mark.parametrize("case", list(Case), ids=str)
    def test_connection_test_names_the_cause(self, case: Case) -> None:
        self.skip_unless_pinged(case)
        pinged = self.pinged(case)
        result = pinged.result
        if case is Case.OK:
            assert (result.ok, result.cause) == (True, None), result.message
            assert result.message, "an accepted ping says what it did"
        else:
            expect = self.expected[case]
            assert (result.ok, result.cause) == (False, expect.cause), result.message
            if expect.status is not None:
                assert result.status == expect.status
        assert json.loads(json.dumps(result.public()))["cause"] == result.cause
        for word in pinged.provoked.mentions:
            assert word in result.message, f"the message does not name {word!r}"

    @pytest.mark.parametrize("case", FAILURES, ids=str)
    def test_a_failed_test_says_what_to_do(self, case: Case) -> None:
        self.skip_unless_pinged(case)
        message = self.pinged(case).result.message
        assert ACTION.search(message), f"no advice in: {message!r}"

    @pytest.mark.parametrize("case", list(Case), ids=str)
    def test_connection_test_ends_within_its_timeout(self, case: Case) -> None:
        self.skip_unless_pinged(case)
        pinged = self.pinged(case)
        # a ping may make a second request (Segment checks the key): a few timeouts at most
        assert pinged.seconds < 3 * pinged.provoked.timeout + 2.0

    @pytest.mark.parametrize("case", list(Case), ids=str)
    def test_connection_test_shows_no_secret(self, case: Case) -> None:
        self.skip_unless_pinged(case)
        pinged = self.pinged(case)
        forms = secret_forms(pinged.provoked.config.secrets.values())
        assert forms, "provoke() must give the connection its secret settings"
        result = pinged.result
        shown = [result.message, result.endpoint, repr(result), json.dumps(result.public())]
        assert not leaks(shown, forms)
        assert not leaks(pinged.written_logs, forms), "a log line shows a secret"

    @pytest.mark.parametrize("case", list(Case), ids=str)
    def test_the_application_logs_no_secret(self, case: Case) -> None:
        """segbridge's own log records, before any filter (a filter is a second line)."""
        self.skip_unless_pinged(case)
        pinged = self.pinged(case)
        forms = secret_forms(pinged.provoked.config.secrets.values())
        own = [line for name, line in pinged.raw_logs if name.split(".")[0] == "segbridge"]
        assert not leaks(own, forms)

    def test_connection_settings_show_no_secret(self) -> None:
        """Every setting the application calls secret travels as a ``Secret`` (never among
        the plain values) and shows masked in the config's repr and str."""
        self.skip_unless_pinged(Case.OK)
        config = self.pinged(Case.OK).provoked.config
        for spec in self.application.settings:
            if spec.secret:
                assert spec.name not in config.values, f"{spec.name} given as a plain value"
                assert isinstance(config.secrets.get(spec.name), Secret), spec.name
        forms = secret_forms(config.secrets.values())
        assert not leaks([repr(config), str(config), repr(config.secrets)], forms)

"""Segment passes the application conformance kit, against real servers on loopback: the
built-in local Segment (lenient, strict as RudderStack: 401 for an unknown key, and with its
faults on), a receiver that answers 413 to big batches, a port with nothing listening, a
``.invalid`` host and a socket that never answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import orjson

from segbridge.apps.base import ConnectionConfig
from segbridge.apps.segment.app import SegmentApplication
from segbridge.core.clock import SimulatedClock
from segbridge.core.secrets import Secret
from segbridge.sandbox import FaultSettings, UnknownKeyMode
from tests.integration.apps.segment_peers import local_segment, size_limited
from tests.kit import ApplicationConformance, Case, Destination, Expect, Provoked, Trouble
from tests.kit.sinks import DOWN_SECONDS, TOO_LARGE_OVER
from tests.support.receivers import silent_server
from tests.support.servers import unused_port

UNKNOWN_KEY = "kitUnknownWriteKey0123456789abcdef"
NO_SUCH_HOST = "segbridge-kit-no-such-host.invalid"
FLAKY = FaultSettings(error_500=0.15, error_503=0.15, error_429=0.1, drop=0.1, retry_after=1)
DOWN = FaultSettings(down_seconds=DOWN_SECONDS)
BROKEN = FaultSettings(error_500=1.0)


def segment_at(endpoint: str, write_key: str) -> ConnectionConfig:
    return ConnectionConfig({"endpoint": endpoint}, {"write_key": Secret(write_key)})


class TestSegmentConformance(ApplicationConformance):
    application = SegmentApplication()
    expected: ClassVar = {
        Case.REFUSED: Expect("refused"),
        Case.DNS: Expect("dns"),
        Case.TIMEOUT: Expect("timeout"),
        Case.UNAUTHORIZED: Expect("write_key_rejected", 401),
        Case.NOT_FOUND: Expect("wrong_endpoint", 404),
    }

    @contextmanager
    def provoke(self, case: Case) -> Iterator[Provoked]:
        if case is Case.OK:
            with local_segment() as segment:
                yield Provoked(segment_at(segment.url, segment.write_key))
        elif case is Case.REFUSED:
            yield Provoked(segment_at(f"http://127.0.0.1:{unused_port()}", UNKNOWN_KEY),
                           mentions=("127.0.0.1",))
        elif case is Case.DNS:
            yield Provoked(segment_at(f"http://{NO_SUCH_HOST}", UNKNOWN_KEY),
                           mentions=(NO_SUCH_HOST,))
        elif case is Case.TIMEOUT:
            with silent_server() as url:
                yield Provoked(segment_at(url, UNKNOWN_KEY), mentions=("127.0.0.1",))
        elif case is Case.UNAUTHORIZED:  # strict receivers answer 401 to an unknown key
            with local_segment("strict") as segment:
                yield Provoked(segment_at(segment.url, UNKNOWN_KEY))
        else:  # a real server that has no Tracking API at this path
            with local_segment() as segment:
                yield Provoked(segment_at(f"{segment.url}/nothing-here", segment.write_key))

    @contextmanager
    def destination(self, trouble: Trouble, clock: SimulatedClock) -> Iterator[Destination]:
        if trouble is Trouble.TOO_LARGE:
            with size_limited(TOO_LARGE_OVER) as (url, limit):
                yield Destination(segment_at(url, UNKNOWN_KEY), lambda: list(limit.kept))
            return
        # Segment answers 200 and drops a bad call; the kit's refusals need strict mode
        mode: UnknownKeyMode = "segment" if trouble is Trouble.DOWN else "strict"
        faults = {Trouble.FLAKY: FLAKY, Trouble.DOWN: DOWN, Trouble.BROKEN: BROKEN}.get(trouble)
        late = DOWN_SECONDS if trouble is Trouble.UNREACHABLE else 0.0
        with local_segment(mode, faults, clock, late) as segment:
            key = UNKNOWN_KEY if trouble is Trouble.KEY_REJECTED else segment.write_key
            yield Destination(segment_at(segment.url, key), segment.kept)

    def call(self, call_id: str, *, valid: bool = True) -> bytes:
        """A track call; an invalid one has a userId that is an object (Segment: 400)."""
        user: object = "kit-user" if valid else {"not": "a string"}
        return orjson.dumps({"type": "track", "event": "Kit Checked", "userId": user,
                             "messageId": call_id, "properties": {"n": call_id}})

"""Segment passes the application conformance kit, against real servers on loopback: the
built-in local Segment (lenient, and strict as RudderStack: 401 for an unknown key), a port
with nothing listening, a ``.invalid`` host and a socket that never answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from segbridge.apps.base import ConnectionConfig
from segbridge.apps.segment.app import SegmentApplication
from segbridge.core.secrets import Secret
from segbridge.sandbox import SandboxConfig, create_sandbox_app, ensure_default_source
from segbridge.sandbox.config import UnknownKeyMode
from tests.kit import ApplicationConformance, Case, Expect, Provoked
from tests.support.receivers import silent_server
from tests.support.servers import serve_in_thread, unused_port

UNKNOWN_KEY = "kitUnknownWriteKey0123456789abcdef"
NO_SUCH_HOST = "segbridge-kit-no-such-host.invalid"


def segment_at(endpoint: str, write_key: str) -> ConnectionConfig:
    return ConnectionConfig({"endpoint": endpoint}, {"write_key": Secret(write_key)})


@contextmanager
def local_segment(mode: UnknownKeyMode = "segment") -> Iterator[tuple[str, str]]:
    """The local Segment on loopback: its URL and the write key of its default source."""
    app = create_sandbox_app(SandboxConfig(state_path=None, unknown_key_mode=mode))
    try:
        write_key = ensure_default_source(app).write_key
        with serve_in_thread(app) as url:
            yield url, write_key
    finally:
        app.state.sandbox.close()


class TestSegmentConformance(ApplicationConformance):
    application = SegmentApplication()
    expected: ClassVar = {
        Case.REFUSED: Expect("refused"),
        Case.DNS: Expect("dns"),
        Case.TIMEOUT: Expect("timeout"),
        Case.UNAUTHORIZED: Expect("write_key_rejected", 401),
        Case.NOT_FOUND: Expect("wrong_endpoint", 404),
    }
    known_bugs: ClassVar = {
        "test_a_failed_test_says_what_to_do[timeout]":
            "kit bug 1: the timeout message (apps/segment/client.py, "
            "classify_transport_error) says what may be wrong but not what to do",
    }

    @contextmanager
    def provoke(self, case: Case) -> Iterator[Provoked]:
        if case is Case.OK:
            with local_segment() as (url, write_key):
                yield Provoked(segment_at(url, write_key))
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
            with local_segment("strict") as (url, _):
                yield Provoked(segment_at(url, UNKNOWN_KEY))
        else:  # a real server that has no Tracking API at this path
            with local_segment() as (url, write_key):
                yield Provoked(segment_at(f"{url}/nothing-here", write_key))

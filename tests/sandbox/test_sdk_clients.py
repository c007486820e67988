"""The official Python clients (Segment's and RudderStack's) send to the receiver intact, and
each (segment-analytics-python newest and 2.3.4, rudder-sdk-python) meets Segment's answers in
the default mode and refusals in strict mode without retrying what Segment would not retry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import Sandbox, SandboxFactory

pytestmark = pytest.mark.integration

EVENTS = 1_200


@pytest.fixture
def roomy(make_sandbox: SandboxFactory) -> Sandbox:
    return make_sandbox(debugger_size=EVENTS + 10)


def _send_with(client: Any) -> dict[str, dict[str, Any]]:
    """Send identify/track/page/group/alias calls; the messages by messageId."""
    sent: dict[str, dict[str, Any]] = {}
    for i in range(EVENTS):
        user = f"user-{i % 40}"
        if i % 5 == 0:
            ok, msg = client.identify(user, {"email": f"{user}@example.com", "n": i})
        elif i % 5 == 1:
            ok, msg = client.page(user, "Docs", f"Page {i}", {"path": f"/p/{i}"})
        elif i % 5 == 2:
            ok, msg = client.group(user, "acme", {"plan": "pro"})
        elif i % 5 == 3:
            ok, msg = client.alias(f"anon-{i}", user)
        else:
            ok, msg = client.track(user, "Order Completed", {"order": i, "total": i * 1.5})
        assert ok
        sent[msg["messageId"]] = msg
    client.flush()
    client.shutdown()
    return sent


def _check_arrived(
    sandbox: Sandbox, source: dict[str, Any], sent: dict[str, dict[str, Any]]
) -> None:
    stats = sandbox.stats(source["id"])
    assert (stats["accepted"], stats["dropped"], stats["duplicates"], stats["rejected"]) == (
        EVENTS,
        0,
        0,
        0,
    )
    events = {e["message_id"]: e for e in sandbox.events(source["id"], limit=EVENTS)}
    assert events.keys() == sent.keys()
    for message_id, msg in sent.items():
        raw = events[message_id]["raw"]
        assert raw["type"] == msg["type"]
        for name in ("userId", "event", "properties", "traits", "groupId", "previousId", "name"):
            if msg.get(name) is not None:
                assert raw[name] == msg[name], name
        assert raw["originalTimestamp"] == msg["timestamp"]
        assert raw["context"]["library"]["name"]


def test_segment_analytics_python_delivers_every_event(roomy: Sandbox) -> None:
    from segment.analytics import Client

    source = roomy.new_source()
    errors: list[Exception] = []
    client = Client(
        source["write_key"],
        host=roomy.url,
        gzip=True,
        upload_interval=0.05,
        on_error=lambda error, batch: errors.append(error),
        max_queue_size=EVENTS * 2,
    )
    sent = _send_with(client)
    assert errors == []
    _check_arrived(roomy, source, sent)


def test_rudder_sdk_python_delivers_every_event(roomy: Sandbox) -> None:
    from rudderstack.analytics import Client

    source = roomy.new_source()
    errors: list[Exception] = []
    client = Client(
        source["write_key"],
        host=roomy.url,
        upload_interval=0.05,
        on_error=lambda error, batch: errors.append(error),
        max_queue_size=EVENTS * 2,
    )
    sent = _send_with(client)
    assert errors == []
    _check_arrived(roomy, source, sent)


def test_segment_client_sync_mode_single_batches(roomy: Sandbox) -> None:
    from segment.analytics import Client

    source = roomy.new_source()
    client = Client(source["write_key"], host=roomy.url, sync_mode=True)
    ok, msg = client.track("user-1", "Synced", {"a": 1})
    assert ok
    [event] = roomy.events(source["id"])
    assert event["message_id"] == msg["messageId"]
    assert event["raw"]["sentAt"]  # the batch's sentAt is kept on the call


# --- Errors and retries: each client against the default (Segment) and strict modes -------

DRIVER = Path(__file__).with_name("sdk_driver.py")
OLD_SEGMENT = "segment-analytics-python==2.3.4"
CLIENT_CACHE = Path(os.environ.get("SEGBRIDGE_TEST_CACHE", Path.home() / ".cache" / "segbridge"))


@pytest.fixture(scope="session")
def old_segment_client() -> Path:
    """segment-analytics-python 2.3.4 (the last release that reads ``body["code"]`` without a
    guard), installed once into a cached folder; skipped when the package index is out of
    reach."""
    folder = CLIENT_CACHE / "test-clients" / OLD_SEGMENT.replace("==", "-")
    if (folder / "segment" / "analytics").is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=folder.parent))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-deps", "--target", str(staging), OLD_SEGMENT]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.skip(f"could not install {OLD_SEGMENT} (no package index?): {done.stderr[-300:]}")
    try:
        staging.rename(folder)  # atomic: a parallel worker may have won; its copy is as good
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


@dataclass(frozen=True)
class Run:
    """What one client did in one scenario: the errors it reported, the requests it made."""

    errors: list[dict[str, Any]]
    requests: int
    version: str


def _drive(sandbox: Sandbox, client: str, key: str, scenario: str, path: Path | None) -> Run:
    env = {**os.environ}
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    before = sandbox.state.receiver.requests
    done = subprocess.run(
        [sys.executable, str(DRIVER), client, sandbox.url, key, scenario],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    return Run(report["errors"], sandbox.state.receiver.requests - before, report["version"])


CLIENTS = ["segment-newest", "segment-2.3.4", "rudder"]
UNKNOWN_KEY = "unknownWriteKey0123456789abcdef0"


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> tuple[str, Path | None]:
    if request.param == "segment-2.3.4":
        return "segment", request.getfixturevalue("old_segment_client")
    return ("rudder" if request.param == "rudder" else "segment"), None


def test_clients_against_segments_answers(
    make_sandbox: SandboxFactory, client: tuple[str, Path | None]
) -> None:
    """Segment's answers: 200 for a valid batch, an unknown key and a bad call alike."""
    name, path = client
    sandbox = make_sandbox()
    source = sandbox.new_source()
    valid = _drive(sandbox, name, source["write_key"], "valid", path)
    assert (valid.errors, valid.requests) == ([], 1)
    assert sandbox.stats(source["id"])["accepted"] == 5

    unknown = _drive(sandbox, name, UNKNOWN_KEY, "valid", path)
    assert (unknown.errors, unknown.requests) == ([], 1)
    assert sandbox.admin.get("/api/receiver").json()["unknown_write_key"]["events"] == 5

    bad = _drive(sandbox, name, source["write_key"], "bad-call", path)
    assert (bad.errors, bad.requests) == ([], 1)
    stats = sandbox.stats(source["id"])
    assert (stats["accepted"], stats["dropped_by_reason"]) == (9, {"invalid_field": 1})


def test_clients_against_strict_refusals_never_retry(
    make_sandbox: SandboxFactory, client: tuple[str, Path | None]
) -> None:
    """Strict mode's 401 and 400 reach the client as an error with Segment's code, once:
    a 4xx other than 429 is never retried (before the error shape was Segment's, some
    clients crashed reading it and retried the same request)."""
    name, path = client
    sandbox = make_sandbox(unknown_key_mode="strict")
    source = sandbox.new_source()
    valid = _drive(sandbox, name, source["write_key"], "valid", path)
    assert (valid.errors, valid.requests) == ([], 1)

    unknown = _drive(sandbox, name, UNKNOWN_KEY, "valid", path)
    assert unknown.requests == 1, f"{name} {unknown.version} retried a 401"
    assert [(e["status"], e["code"]) for e in unknown.errors] == [(401, "invalid_write_key")]

    bad = _drive(sandbox, name, source["write_key"], "bad-call", path)
    assert bad.requests == 1, f"{name} {bad.version} retried a 400"
    assert [(e["status"], e["code"]) for e in bad.errors] == [(400, "invalid_field")]
    assert sandbox.stats(source["id"])["accepted"] == 5

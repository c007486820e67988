"""With worker processes reading batches (``workers``, ``segbridge sandbox --workers N``) the
receiver answers and records exactly as it does alone: the same statuses and error bodies,
the same drops with their reasons and details, duplicates found across requests whichever
worker read them, the same events in the Debugger and in the archive."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from segbridge.sandbox import SandboxConfig
from segbridge.sandbox.limits import MAX_CALL_BYTES

from .conftest import Sandbox, SandboxFactory, basic
from .test_cli import _free_port
from .test_tracking_errors import BAD_CALLS, BAD_REQUESTS

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
SENT_AT = "2026-03-01T12:00:05.000Z"
PAD = {"type": "identify", "userId": "pad", "messageId": "pad", "traits": {"p": "p" * 20_000}}


def _track(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": f"user-{number}",
        "event": "Order Completed",
        "messageId": f"m-{number}",
        "timestamp": "2026-03-01T12:00:00.000Z",
        "properties": {"order": number, "revenue": 12.5},
        **fields,
    }


def _just_under_the_limit() -> dict[str, Any]:
    call = _track(9_000, properties={"blob": ""})
    call["properties"]["blob"] = "x" * (MAX_CALL_BYTES - len(orjson.dumps(call)))
    return call


def _requests() -> list[tuple[str, bytes, dict[str, str]]]:
    """(path, body, headers) of requests of every kind a batch can be, in order."""
    gz = {"Content-Encoding": "gzip"}
    good = {"batch": [_track(i) for i in range(40)], "sentAt": SENT_AT}
    shared = {
        "batch": [_track(i, context={"ip": "1.2.3.4"}) for i in range(100, 110)],
        "context": {"library": {"name": "x"}},
        "integrations": {"All": False},
    }
    overlapping = {"batch": [_track(i) for i in range(30, 60)]}
    no_ids = {"batch": [{"type": "identify", "userId": f"u{i}"} for i in range(5)]}
    semantic = {
        "batch": [
            {"type": "track", "event": "E", "messageId": "no-user"},
            {"type": "track", "userId": "u", "messageId": "no-event"},
            {"type": "group", "userId": "u", "messageId": "no-group"},
            {"type": "alias", "userId": "u", "messageId": "no-previous"},
            _track(200, messageId=""),
        ]
    }
    requests = [(path, body, {}) for _, path, body, _ in BAD_REQUESTS + BAD_CALLS]
    requests += [
        ("/v1/batch", gzip.compress(orjson.dumps(good)), gz),
        ("/v1/batch", gzip.compress(orjson.dumps(good)), gz),  # all duplicates
        ("/v1/import", orjson.dumps(overlapping), {}),
        ("/v1/b", orjson.dumps(shared), {}),
        ("/v1/batch/", orjson.dumps(no_ids), {}),
        ("/v1/batch", orjson.dumps(semantic), {}),
        ("/v1/batch", orjson.dumps({"batch": [_track(i) for i in range(2_501)]}), {}),
        ("/v1/batch", gzip.compress(orjson.dumps(good))[:-20], gz),  # truncated gzip
        ("/v1/batch", orjson.dumps({"batch": [PAD, PAD, _just_under_the_limit()]}), {}),
        ("/v1/batch", orjson.dumps({"batch": [PAD, _track(300, big="b" * 40_000)]}), {}),
        ("/v1/track", orjson.dumps(_track(400)), {}),
    ]
    return requests


def _observe(sandbox: Sandbox, source: dict[str, Any]) -> dict[str, Any]:
    """Post every request; what a user sees: answers, counters, drop log and events."""
    answers = []
    for path, body, headers in _requests():
        response = sandbox.http.post(
            path, content=body, headers={**basic(source["write_key"]), **JSON, **headers}
        )
        answers.append((path, response.status_code, response.json()))
    unknown = sandbox.http.post(
        "/v1/batch", content=orjson.dumps({"batch": [_track(1)] * 3}), headers=basic("Z" * 32)
    )
    answers.append(("unknown key", unknown.status_code, unknown.json()))
    dropped = sandbox.dropped(source["id"])
    events = sandbox.events(source["id"], limit=500)
    receiver = sandbox.admin.get("/api/receiver").json()
    return {
        "answers": answers,
        "stats": {k: v for k, v in sandbox.stats(source["id"]).items() if k != "source_id"},
        "dropped": [_as_sent({k: v for k, v in d.items() if k != "at"}) for d in dropped],
        "events": [_as_sent(e["raw"]) for e in events],
        "seq": [e["seq"] for e in events],
        "unknown": {k: v for k, v in receiver["unknown_write_key"].items() if k != "recent"},
    }


def _as_sent(call: dict[str, Any]) -> dict[str, Any]:
    """An event without what depends on the moment it arrived (or a generated id)."""
    kept = {k: v for k, v in call.items() if k not in ("receivedAt", "timestamp")}
    for name in ("messageId", "message_id"):
        if str(kept.get(name, "")).startswith("api-"):
            kept[name] = "api-(generated)"
    return kept


def test_a_receiver_with_workers_answers_and_records_as_one_alone(
    make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    alone = make_sandbox(archive_path=tmp_path / "alone.ndjson")
    with_workers = make_sandbox(archive_path=tmp_path / "workers.ndjson", workers=2)
    assert with_workers.state.workers is not None
    seen = _observe(alone, alone.new_source())
    assert _observe(with_workers, with_workers.new_source()) == seen
    assert len(seen["events"]) > 50, "the script is not all refusals"
    archived = [
        [_as_sent(orjson.loads(line)) for line in (tmp_path / name).read_bytes().splitlines()]
        for name in ("alone.ndjson", "workers.ndjson")
    ]
    assert archived[0] == archived[1]
    stamped = with_workers.events(with_workers.state.store.list()[-1].id)[0]["raw"]
    assert stamped["originalTimestamp"] == "2026-03-01T12:00:00.000Z"
    assert stamped["receivedAt"] and stamped["timestamp"]


def test_strict_mode_with_workers_refuses_as_one_alone(make_sandbox: SandboxFactory) -> None:
    alone = make_sandbox(unknown_key_mode="strict")
    with_workers = make_sandbox(unknown_key_mode="strict", workers=1)
    observed = []
    for sandbox in (alone, with_workers):
        source = sandbox.new_source()
        answers = []
        for path, body, _ in [(p, b, h) for p, b, h in _requests() if p.startswith("/v1/b")]:
            response = sandbox.http.post(
                path, content=body, headers={**basic(source["write_key"]), **JSON}
            )
            answers.append((response.status_code, response.json()))
        unknown = sandbox.http.post("/v1/batch", json={"batch": []}, headers=basic("Z" * 32))
        answers.append((unknown.status_code, unknown.json()))
        stats = sandbox.stats(source["id"])
        observed.append((answers, {k: v for k, v in stats.items() if k != "source_id"}))
    assert observed[0] == observed[1]
    assert any(status == 400 for status, _ in observed[0][0])


def test_a_duplicate_read_by_another_worker_is_still_dropped(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox = make_sandbox(workers=2)
    source = sandbox.new_source()
    # 20 batches of 100 calls sent at once; each messageId is in two of them
    batches = [[_track(i % 1_000) for i in range(n * 100, n * 100 + 100)] for n in range(20)]

    async def send_all() -> list[int]:
        async with httpx.AsyncClient(base_url=sandbox.url, headers=basic(source["write_key"])) as c:
            sent = [c.post("/v1/batch", json={"batch": batch}) for batch in batches]
            return [response.status_code for response in await asyncio.gather(*sent)]

    assert asyncio.run(send_all()) == [200] * 20
    stats = sandbox.stats(source["id"])
    assert (stats["received"], stats["accepted"], stats["duplicates"]) == (2_000, 1_000, 1_000)


def test_a_killed_worker_loses_no_batch(make_sandbox: SandboxFactory) -> None:
    sandbox = make_sandbox(workers=1)
    source = sandbox.new_source()
    headers = basic(source["write_key"])

    def post(first: int) -> int:
        batch = {"batch": [_track(i) for i in range(first, first + 10)]}
        return sandbox.http.post("/v1/batch", json=batch, headers=headers).status_code

    assert post(0) == 200
    [worker] = [pid for pid in _children(os.getpid()) if _is_pool_worker(pid)]
    os.kill(worker, signal.SIGKILL)
    assert [post(10), post(20), post(30)] == [200, 200, 200]
    assert sandbox.stats(source["id"])["accepted"] == 40


def _is_pool_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_a_negative_number_of_workers_is_refused() -> None:
    with pytest.raises(ValueError, match="workers must be 0"):
        SandboxConfig(state_path=None, workers=-1)


def test_segbridge_sandbox_with_workers_receives_batches_and_stops(tmp_path: Path) -> None:
    port = _free_port()
    token_file = tmp_path / "token"
    command = [
        sys.executable, "-u", "-m", "segbridge.sandbox", "--port", str(port),
        "--admin-token-file", str(token_file), "--workers", "2",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        try:
            output = ""
            assert process.stdout is not None
            while "Batches read by" not in output:
                line = process.stdout.readline()
                assert line, output
                output += line
            found = re.search(r"write key: (\w+)", output)
            assert found, output
            assert "Batches read by 2 worker processes" in output
            url = f"http://127.0.0.1:{port}"
            batch = {"batch": [_track(i) for i in range(10)]}
            response = _post_when_listening(url, batch, found.group(1))
            assert (response.status_code, response.json()) == (200, {"success": True})
            token = token_file.read_text().strip()
            admin = {"Authorization": f"Bearer {token}"}
            [source] = httpx.get(f"{url}/api/sources", headers=admin).json()["sources"]
            stats = httpx.get(f"{url}/api/sources/{source['id']}/stats", headers=admin).json()
            assert stats["accepted"] == 10
            workers = _children(process.pid)
            assert len(workers) >= 2
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(20)
    assert process.returncode in (0, -signal.SIGTERM)
    for _ in range(100):  # multiprocessing's resource tracker ends once it sees the end
        if not [pid for pid in workers if _running(pid)]:
            break
        time.sleep(0.05)
    assert not [pid for pid in workers if _running(pid)], "processes left behind"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _post_when_listening(url: str, batch: dict[str, Any], write_key: str) -> httpx.Response:
    for _ in range(200):
        try:
            return httpx.post(f"{url}/v1/batch", json=batch, headers=basic(write_key), timeout=30)
        except httpx.ConnectError:
            time.sleep(0.05)
    raise AssertionError("the receiver did not listen")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found

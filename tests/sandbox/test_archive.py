"""The archive holds exactly the accepted events, one JSON line each."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from .conftest import SandboxFactory, basic

pytestmark = pytest.mark.integration


def test_archive_holds_exactly_the_accepted_events(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    archive = tmp_path / "events.ndjson"
    sandbox = make_sandbox(archive_path=archive, debugger_size=1_000)
    source = sandbox.new_source()
    headers = basic(source["write_key"])
    batch = [
        {"type": "track", "userId": "u", "event": "E", "messageId": f"m{i}"} for i in range(300)
    ]
    batch += [{"type": "track", "event": "no user", "messageId": "dropped"}]
    assert sandbox.http.post("/v1/batch", json={"batch": batch}, headers=headers).status_code == 200
    assert (
        sandbox.http.post("/v1/batch", json={"batch": batch[:10]}, headers=headers).status_code
        == 200
    )
    assert sandbox.http.post("/v1/track", content=b"{bad", headers=headers).status_code == 400
    single = {"userId": "u", "event": "Single"}
    assert sandbox.http.post("/v1/track", json=single, headers=headers).status_code == 200

    lines = archive.read_bytes().splitlines()
    archived = [orjson.loads(line) for line in lines]
    assert len(archived) == 301 == sandbox.stats(source["id"])["accepted"]
    assert [a["messageId"] for a in archived[:300]] == [f"m{i}" for i in range(300)]
    assert archived[300]["event"] == "Single"
    assert all("receivedAt" in a and "timestamp" in a for a in archived)
    debugger = {e["message_id"]: e["raw"] for e in sandbox.events(source["id"], limit=1_000)}
    assert all(debugger[a["messageId"]] == a for a in archived)


def test_an_archive_failure_answers_500_and_records_nothing(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    unwritable = tmp_path / "a-directory"
    unwritable.mkdir()
    sandbox = make_sandbox(archive_path=unwritable)
    source = sandbox.new_source()
    call = {"userId": "u", "event": "E", "messageId": "kept-for-retry"}
    for _ in range(2):  # the retry is not mistaken for a duplicate
        response = sandbox.http.post("/v1/track", json=call, headers=basic(source["write_key"]))
        assert response.status_code == 500
        assert response.json()["code"] == "archive_failed"
    stats = sandbox.stats(source["id"])
    assert (stats["received"], stats["accepted"], stats["duplicates"]) == (0, 0, 0)

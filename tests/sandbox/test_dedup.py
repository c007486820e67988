"""Deduplication on messageId: a 24-hour window, bounded memory, counted and shown."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from segbridge.sandbox.dedup import MessageIdDeduper

from .conftest import Sandbox, basic

pytestmark = pytest.mark.integration

DAY = 24 * 60 * 60


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_an_id_is_a_duplicate_within_the_window_only() -> None:
    clock = FakeClock()
    dedup = MessageIdDeduper(100, clock=clock)
    assert dedup.seen("src", "m1") is False
    clock.now += DAY - 2
    assert dedup.seen("src", "m1") is True
    clock.now += 3  # now more than 24 h after the first sighting
    assert dedup.seen("src", "m1") is False


def test_ids_are_per_source() -> None:
    dedup = MessageIdDeduper(10)
    assert dedup.seen("a", "m1") is False
    assert dedup.seen("b", "m1") is False
    assert dedup.seen("a", "m1") is True


def test_memory_is_bounded_to_the_most_recent_ids() -> None:
    dedup = MessageIdDeduper(1_000)
    size = dedup.memory_bytes()
    for i in range(10_000):
        assert dedup.seen("src", f"m{i}") is False
    assert len(dedup) == 1_000
    assert dedup.memory_bytes() == size
    assert all(dedup.seen("src", f"m{i}") for i in range(9_000, 10_000))
    assert dedup.seen("src", "m0") is False  # long forgotten


def test_a_million_ids_fit_in_about_30_mb() -> None:
    assert MessageIdDeduper(1_000_000).memory_bytes() < 30 * 1024 * 1024


def test_an_id_forgotten_then_seen_again_stays_remembered_after_its_old_entry_ages_out() -> None:
    dedup = MessageIdDeduper(4)
    assert dedup.seen("s", "m0") is False
    dedup.forget("s", "m0")  # (its call was not kept)
    assert dedup.seen("s", "m0") is False  # seen again: remembered anew
    assert [dedup.seen("s", f"m{i}") for i in (1, 2, 3)] == [False] * 3  # the old entry goes
    assert dedup.seen("s", "m0") is True
    assert dedup.seen("s", "m4") is False  # ... and then its own
    assert dedup.seen("s", "m0") is False


def test_forget_undoes_seen_and_keeps_others() -> None:
    dedup = MessageIdDeduper(50)
    for i in range(40):
        dedup.seen("s", f"m{i}")
    dedup.forget("s", "m7")
    assert dedup.seen("s", "m7") is False
    assert all(dedup.seen("s", f"m{i}") for i in range(40))


def test_duplicates_are_answered_200_counted_and_dropped(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    headers = basic(source["write_key"])
    call = {"userId": "u", "event": "Paid", "messageId": "pay-1"}
    for _ in range(3):
        response = sandbox.http.post("/v1/track", json=call, headers=headers)
        assert response.status_code == 200
    assert [e["message_id"] for e in sandbox.events(source["id"])] == ["pay-1"]
    stats = sandbox.stats(source["id"])
    assert (stats["received"], stats["accepted"], stats["duplicates"], stats["dropped"]) == (
        3,
        1,
        2,
        0,
    )
    reasons = [d["reason"] for d in sandbox.dropped(source["id"])]
    assert reasons == ["duplicate_message_id", "duplicate_message_id"]


def test_duplicates_inside_one_batch(sandbox: Sandbox, source: dict[str, Any]) -> None:
    batch = [
        {"type": "track", "userId": "u", "event": "E", "messageId": f"m{i % 3}"} for i in range(9)
    ]
    body = orjson.dumps({"batch": batch})
    headers = {**basic(source["write_key"]), "Content-Type": "application/json"}
    assert sandbox.http.post("/v1/batch", content=body, headers=headers).status_code == 200
    assert sorted(e["message_id"] for e in sandbox.events(source["id"])) == ["m0", "m1", "m2"]
    assert sandbox.stats(source["id"])["duplicates"] == 6


def test_calls_without_message_id_are_never_duplicates(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    call = {"userId": "u", "event": "Retried"}
    for _ in range(2):
        sandbox.http.post("/v1/track", json=call, headers=basic(source["write_key"]))
    events = sandbox.events(source["id"])
    assert len(events) == 2
    assert events[0]["message_id"] != events[1]["message_id"]


def test_a_messageid_is_a_duplicate_in_any_source_of_the_workspace(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    other = sandbox.new_source()
    call = {"userId": "u", "event": "Paid", "messageId": "shared-across-sources-1"}
    for target in (source, other):
        response = sandbox.http.post("/v1/track", json=call, headers=basic(target["write_key"]))
        assert (response.status_code, response.json()) == (200, {"success": True})
    assert [e["message_id"] for e in sandbox.events(source["id"])] == ["shared-across-sources-1"]
    assert sandbox.events(other["id"]) == []
    assert [d["reason"] for d in sandbox.dropped(other["id"])] == ["duplicate_message_id"]


def test_the_table_answers_as_a_plain_set_of_the_most_recent_ids_would() -> None:
    # many ids for few slots (long probe chains, deletions that shift them) and a full table
    # forgetting its oldest id for each new one: every answer is that of the last ids seen
    import random
    from collections import deque

    rng = random.Random(7)
    capacity = 64
    dedup = MessageIdDeduper(capacity)
    recent: deque[str] = deque()
    for step in range(20_000):
        message_id = f"m{rng.randrange(200)}"
        expected = message_id in recent
        assert dedup.seen("s", message_id) is expected, step
        if not expected:
            recent.append(message_id)
            if len(recent) > capacity:
                recent.popleft()
    assert len(dedup) == capacity

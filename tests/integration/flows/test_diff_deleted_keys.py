"""Deleted keys of a diff sync end to end: an import that asks for it sends one call for each
key its snapshot has and a run no longer finds (a track with its event, or an identify), to
its connection in the local Segment, with the identity last sent for the key; once; a key that
comes back is new again; a run that fails leaves the snapshot as it was and the next one sends
the same calls with the same messageIds; off by default nothing is sent. On SQLite and
PostgreSQL (the deleted keys are one anti-join in the database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segbridge.storage.models import Run
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    Receiver,
    assert_invariant,
    orders,
    segment_connection,
    track_flow,
    wait_for_run,
    write_csv,
)
from tests.integration.flows.test_diff_syncs import (  # noqa: F401
    create_flow,
    diff_flow,
    lane_workers,
    run_flow,
)
from tests.support.browser_session import browser

pytestmark = pytest.mark.sql

RECORD_DELETED = {"call": "track", "event": "Order Deleted"}


def deleted_flow(path: Path, connection: str, deleted: dict[str, Any] | None,
                 sync: str = "changed") -> dict[str, Any]:
    doc = diff_flow(path, connection, sync)
    if deleted is not None:
        doc["imports"][0]["deleted"] = deleted
    return doc


def counts(run: dict[str, Any], name: str = "Orders") -> dict[str, int]:
    per = run["counts"]["imports"][name]
    return {key: per.get(key, 0) for key in ("new", "changed", "unchanged", "deleted",
                                             "deletions_sent", "deletions_failed",
                                             "deletions_skipped")}


def deletions(receiver: Receiver, event: str = "Order Deleted") -> list[dict[str, Any]]:
    return [e for e in receiver.archived()
            if e.get("event") == event or e.get("traits", {}).get("deleted") is True]


def test_a_deleted_key_sends_one_track_with_its_identity_once_and_comes_back_as_new(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(100)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, deleted_flow(path, connection["name"], RECORD_DELETED))
    first = run_flow(server, flow["id"])
    assert first["status"] == "succeeded", first
    assert counts(first)["new"] == 100 and deletions(receiver) == []

    rows[10]["customer_id"] = "c-moved"  # sent again: its last identity is this one
    write_csv(path, rows)
    assert counts(run_flow(server, flow["id"]))["changed"] == 1
    kept = [dict(row) for i, row in enumerate(rows) if i not in (3, 10, 42)]
    kept[20]["customer_id"] = ""  # a record error: still there, so not deleted
    write_csv(path, kept)

    second = run_flow(server, flow["id"])

    assert second["status"] == "completed_with_errors", second
    assert counts(second) == {"new": 0, "changed": 1, "unchanged": 96, "deleted": 3,
                              "deletions_sent": 3, "deletions_failed": 0,
                              "deletions_skipped": 0}
    gone = {e["properties"]["order_id"]: e for e in deletions(receiver)}
    assert sorted(gone, key=int) == ["3", "10", "42"]
    assert {key: e["userId"] for key, e in gone.items()} == {
        "3": "c3", "10": "c-moved", "42": "c42"}  # the identity last sent for each key
    for event in gone.values():
        assert event["type"] == "track" and event["event"] == "Order Deleted"
        assert event["properties"] == {"order_id": event["properties"]["order_id"]}
    assert_invariant(server, flow["id"], second)
    with browser(server) as me:  # the run's page says how the calls went
        page = me.get(f"/runs/{second['id']}")
    assert "deleted 3 · calls for deleted keys: sent 3, failed 0, skipped 0" in page.text

    third = run_flow(server, flow["id"])  # gone from the snapshot: not sent again
    assert counts(third)["deleted"] == 0 and counts(third)["deletions_sent"] == 0
    assert len(deletions(receiver)) == 3

    write_csv(path, rows)  # they come back: new again (the record error's row: as it was)
    back = run_flow(server, flow["id"])
    assert back["status"] == "succeeded", back
    assert counts(back)["new"] == 3 and counts(back)["unchanged"] == 97
    assert counts(back)["deleted"] == 0 and back["counts"]["sent"] == 3
    # (their messageIds are those of their first send, the same key and version: Segment
    # drops them as repeats within its deduplication window; see the notes of issue 14)


def test_an_identify_carries_the_key_and_the_traits_and_new_mode_keeps_held_keys(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(30)
    path = write_csv(tmp_path / "orders.csv", rows)
    deleted = {"call": "identify", "traits": {"deleted": True, "source": "shop"}}
    flow = create_flow(server, deleted_flow(path, connection["name"], deleted, sync="new"))
    run_flow(server, flow["id"])
    rows[5]["total"] = "0.10"  # changed: held by a sync of new records, not deleted
    write_csv(path, rows[:-1])

    run = run_flow(server, flow["id"])

    assert counts(run) == {"new": 0, "changed": 1, "unchanged": 28, "deleted": 1,
                           "deletions_sent": 1, "deletions_failed": 0, "deletions_skipped": 0}
    [sent] = deletions(receiver)
    assert sent["type"] == "identify" and sent["userId"] == f"c{29 % 97}"
    assert sent["traits"] == {"deleted": True, "source": "shop", "order_id": "29"}


def test_off_by_default_a_deleted_key_is_only_counted(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(20)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, deleted_flow(path, connection["name"], None))
    run_flow(server, flow["id"])
    write_csv(path, rows[2:])

    run = run_flow(server, flow["id"])
    again = run_flow(server, flow["id"])

    assert counts(run)["deleted"] == 2 and counts(again)["deleted"] == 2  # still counted
    assert counts(run)["deletions_sent"] == 0
    assert "deletions_sent" not in run["counts"]["imports"]["Orders"]
    assert len(receiver.archived()) == 20


def test_keys_sent_before_the_call_was_asked_for_are_skipped(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(10)
    path = write_csv(tmp_path / "orders.csv", rows)
    doc = deleted_flow(path, connection["name"], None)
    flow = create_flow(server, doc)
    run_flow(server, flow["id"])
    doc["imports"][0]["deleted"] = RECORD_DELETED
    updated = server.api.put(f"/api/v1/flows/{flow['id']}", json=doc)
    assert updated.status_code == 200, updated.text
    write_csv(path, rows[1:])

    run = run_flow(server, flow["id"])

    assert run["status"] == "succeeded", run
    assert counts(run)["deleted"] == 1 and counts(run)["deletions_skipped"] == 1
    assert deletions(receiver) == []  # no identity kept for it: nothing to address
    assert counts(run_flow(server, flow["id"]))["deleted"] == 0


def test_a_run_that_fails_sending_them_sends_the_same_calls_next_time(
    server: Server, strict_receiver: Receiver, workers: Workers, shop: dict[str, Any],
    tmp_path: Path,
) -> None:
    receiver = strict_receiver
    kept = segment_connection(server, receiver, name="Kept")
    lost = segment_connection(server, receiver, name="Lost")
    rows = orders(40)
    path = write_csv(tmp_path / "orders.csv", rows)
    doc = deleted_flow(path, kept["name"], RECORD_DELETED)
    doc["imports"].append({**doc["imports"][0], "name": "Archive", "connection": lost["name"]})
    flow = create_flow(server, doc)
    assert run_flow(server, flow["id"])["status"] == "succeeded"
    write_csv(path, rows[:-4])
    assert receiver.client.delete(f"/api/sources/{lost['source_id']}").status_code == 204

    failed = run_flow(server, flow["id"])  # Orders' calls go; Archive's are refused (401)

    assert failed["status"] == "failed", failed
    assert "deleted keys" in failed["message"] and "401" in failed["message"], failed
    assert len(deletions(receiver)) == 4
    first_ids = sorted(e["messageId"] for e in deletions(receiver))
    write_key = receiver.create_source("Again")["write_key"]
    response = server.api.put(f"/api/v1/connections/{lost['id']}", json={
        "name": "Lost", "application": "segment",
        "settings": {"write_key": write_key, "endpoint": receiver.url}})
    assert response.status_code == 200, response.text

    again = run_flow(server, flow["id"])

    assert again["status"] == "succeeded", again
    assert counts(again)["deletions_sent"] == 4
    assert counts(again, "Archive")["deletions_sent"] == 4
    assert receiver.stats(kept["source_id"])["duplicates"] == 4  # the same messageIds
    assert sorted(e["messageId"] for e in deletions(receiver)
                  if e["messageId"] in first_ids) == first_ids
    assert counts(run_flow(server, flow["id"]))["deleted"] == 0


def test_lanes_note_what_they_send_and_hold_and_the_run_sends_only_the_deleted_keys(
    server: Server, receiver: Receiver, lane_workers: Workers,  # noqa: F811
    shop: dict[str, Any],
    tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(3000)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, deleted_flow(path, connection["name"], RECORD_DELETED))
    assert run_flow(server, flow["id"])["counts"]["sent"] == 3000
    for row in rows[5::300]:
        row["total"] = "3.00"
    write_csv(path, [row for row in rows if row["order_id"] % 100 != 7])

    run = run_flow(server, flow["id"])

    assert run["status"] == "succeeded", run
    assert counts(run) == {"new": 0, "changed": 10, "unchanged": 2960, "deleted": 30,
                           "deletions_sent": 30, "deletions_failed": 0,
                           "deletions_skipped": 0}
    assert sorted(int(e["properties"]["order_id"]) for e in deletions(receiver)) == \
        list(range(7, 3000, 100))
    assert counts(run_flow(server, flow["id"]))["deleted"] == 0


def test_the_cli_shows_how_the_calls_for_deleted_keys_went(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
    env: dict[str, str],
) -> None:
    from click.testing import CliRunner

    from segbridge.cli.main import cli

    connection = segment_connection(server, receiver)
    rows = orders(12)
    path = write_csv(tmp_path / "orders.csv", rows)
    create_flow(server, deleted_flow(path, connection["name"], RECORD_DELETED))
    assert CliRunner().invoke(cli, ["flows", "run", "Orders"], env=env, obj={}).exit_code == 0
    write_csv(path, rows[:10])

    shown = CliRunner().invoke(cli, ["flows", "run", "Orders"], env=env, obj={})

    assert shown.exit_code == 0, shown.output
    assert "Orders: new 0  changed 0  unchanged 10  deleted 2" in shown.output
    assert "Orders, calls for deleted keys: sent 2  failed 0  skipped 0" in shown.output


def test_a_run_that_reads_no_records_sends_no_calls_for_deleted_keys(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(10)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, deleted_flow(path, connection["name"], RECORD_DELETED))
    run_flow(server, flow["id"])
    path.write_text(",".join(rows[0]) + "\n")  # the header only: a mistake, more likely

    empty = run_flow(server, flow["id"])

    assert empty["status"] == "succeeded", empty
    assert counts(empty)["deleted"] == 10 and counts(empty)["deletions_sent"] == 0
    assert "the run read no records" in empty["message"]
    assert deletions(receiver) == []
    write_csv(path, rows[:7])
    then = run_flow(server, flow["id"])  # the keys were kept: now 3 are gone
    assert counts(then)["deleted"] == 3 and counts(then)["deletions_sent"] == 3


def test_a_run_with_an_unreadable_record_sends_no_calls_for_deleted_keys(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    """An unreadable line's key is unknown: it may be one of the keys not seen, so none of
    them is told deleted until a run reads every record."""
    connection = segment_connection(server, receiver)
    rows = orders(10)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, deleted_flow(path, connection["name"], RECORD_DELETED))
    run_flow(server, flow["id"])
    write_csv(path, rows[:8])
    with path.open("ab") as handle:  # row 9 still there, but not readable as UTF-8
        handle.write(b"\xff\xfe," + b",".join(str(v).encode() for v in list(rows[8].values())[1:])
                     + b"\n")

    unsure = run_flow(server, flow["id"])

    assert unsure["status"] == "completed_with_errors", unsure
    assert counts(unsure)["deleted"] == 2 and counts(unsure)["deletions_sent"] == 0
    assert "1 record(s) could not be read" in unsure["message"]
    assert deletions(receiver) == []
    write_csv(path, rows[:8])
    then = run_flow(server, flow["id"])  # every record read: both keys are told deleted
    assert counts(then)["deletions_sent"] == 2
    assert len(deletions(receiver)) == 2


def test_a_new_key_field_starts_the_snapshots_again_without_calls_for_deleted_keys(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    path = write_csv(tmp_path / "orders.csv", orders(20))
    doc = deleted_flow(path, connection["name"], {"call": "identify",
                                                  "traits": {"deleted": True}})
    flow = create_flow(server, doc)
    assert counts(run_flow(server, flow["id"]))["new"] == 20
    doc["export"]["key_field"] = "customer_id"  # the old keys are order ids: none was deleted
    updated = server.api.put(f"/api/v1/flows/{flow['id']}", json=doc)
    assert updated.status_code == 200, updated.text

    rekeyed = run_flow(server, flow["id"])

    assert rekeyed["status"] == "succeeded", rekeyed
    assert counts(rekeyed)["new"] == 20 and counts(rekeyed)["deleted"] == 0
    assert counts(rekeyed)["deletions_sent"] == 0 and deletions(receiver) == []
    assert counts(run_flow(server, flow["id"]))["unchanged"] == 20  # keyed anew from here


def crashed_then_rekeyed(server: Server, flow_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A run of the flow, left as a run whose process died after its last commit; then the
    flow saved with another key field."""
    crashed = run_flow(server, flow_id)
    with server.runtime.db.session() as session:
        row = session.get(Run, crashed["id"])
        assert row is not None
        row.status, row.message = "failed", "crashed: its process ended"
    doc["export"]["key_field"] = "customer_id"
    assert server.api.put(f"/api/v1/flows/{flow_id}", json=doc).status_code == 200
    return crashed


def test_a_run_started_before_the_key_field_changed_cannot_be_resumed(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    """A failed run resumes with the flow as it started: after a key_field change it would
    fill the emptied snapshots with the old keys, and the next run would send a deleted-key
    call for every record (found by a tester: 1,000 'Record Deleted' for live users)."""
    connection = segment_connection(server, receiver)
    path = write_csv(tmp_path / "orders.csv", orders(20))
    doc = deleted_flow(path, connection["name"], RECORD_DELETED)
    flow = create_flow(server, doc)
    crashed = crashed_then_rekeyed(server, flow["id"], doc)

    resumed = server.api.post(f"/api/v1/runs/{crashed['id']}/resume")

    assert resumed.status_code == 409, resumed.text
    message = resumed.json()["error"]["message"]
    assert "key_field changed" in message and "Run the flow again" in message
    assert server.api.get(f"/api/v1/runs/{crashed['id']}").json()["status"] == "failed"
    rekeyed = run_flow(server, flow["id"])
    assert counts(rekeyed)["new"] == 20 and counts(rekeyed)["deleted"] == 0
    assert deletions(receiver) == []


def test_a_run_of_sync_all_imports_resumes_after_the_key_field_changed(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    """Only a diff sync's snapshots depend on the key field: a run of a flow that sends every
    record resumes as it began (its messageIds use the key field it started with)."""
    connection = segment_connection(server, receiver)
    doc = track_flow("Orders", write_csv(tmp_path / "orders.csv", orders(20)),
                     connection["name"])
    flow = create_flow(server, doc)
    crashed = crashed_then_rekeyed(server, flow["id"], doc)

    resumed = server.api.post(f"/api/v1/runs/{crashed['id']}/resume")

    assert resumed.status_code == 202, resumed.text
    assert wait_for_run(server, crashed["id"])["status"] == "succeeded"

"""Diff syncs end to end: a CSV flow whose import sends only changed (or new) records, into the
local Segment, run after run over edited files; on SQLite and PostgreSQL (the snapshot is a
table read and written in bulk)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segbridge.runs.lanes import LanePolicy
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    FAST,
    Receiver,
    orders,
    segment_connection,
    track_flow,
    wait_for_run,
    write_csv,
)
from tests.support.browser_session import browser

pytestmark = pytest.mark.sql


def diff_flow(path: Path, connection: str, sync: str = "changed") -> dict[str, Any]:
    doc = track_flow("Orders", path, connection)
    doc["imports"][0]["sync"] = sync
    return doc


def create_flow(server: Server, doc: dict[str, Any]) -> dict[str, Any]:
    response = server.api.post("/api/v1/flows", json=doc)
    assert response.status_code == 201, response.text
    flow: dict[str, Any] = response.json()
    return flow


def run_flow(server: Server, flow_id: str) -> dict[str, Any]:
    response = server.api.post(f"/api/v1/flows/{flow_id}/runs")
    assert response.status_code == 202, response.text
    return wait_for_run(server, response.json()["id"])


def diff_counts(run: dict[str, Any]) -> dict[str, int]:
    per = run["counts"]["imports"]["Orders"]
    return {key: per.get(key, 0) for key in ("new", "changed", "unchanged", "deleted")}


def sent_order_ids(receiver: Receiver, since: int = 0) -> list[str]:
    return [e["properties"]["order_id"] for e in receiver.archived()[since:]]


def test_only_new_and_changed_records_are_sent_each_with_a_new_message_id(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(1000)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"]))

    first = run_flow(server, flow["id"])
    assert first["status"] == "succeeded", first
    assert first["counts"]["sent"] == 1000
    assert diff_counts(first) == {"new": 1000, "changed": 0, "unchanged": 0, "deleted": 0}
    first_ids = {e["properties"]["order_id"]: e["messageId"] for e in receiver.archived()}

    second = run_flow(server, flow["id"])  # the same file: nothing to send
    assert second["status"] == "succeeded", second
    assert second["counts"]["sent"] == 0 and second["counts"]["batches"] == 0
    assert second["counts"]["ignored"] == 1000
    assert diff_counts(second) == {"new": 0, "changed": 0, "unchanged": 1000, "deleted": 0}
    given = second["counts"]["imports"]["Orders"]  # every count given, 0 too, as in the CLI
    assert {key: given[key] for key in ("new", "changed", "deleted")} == dict.fromkeys(
        ("new", "changed", "deleted"), 0)
    assert len(receiver.archived()) == 1000
    with browser(server) as me:  # the run's page says what the diff found
        page = me.get(f"/runs/{second['id']}")
    assert page.status_code == 200
    assert "new 0 · changed 0 · unchanged 1,000 · deleted 0" in page.text

    for row in rows[::100]:  # 1% changed, a column the mapping ignores added everywhere,
        row["total"] = "999.00"  # two rows gone, one new
    edited = [{**row, "unused": "x"} for row in rows[2:]] + [
        {**orders(1, start=5000)[0], "unused": "x"}]
    write_csv(path, edited)
    third = run_flow(server, flow["id"])

    assert third["status"] == "succeeded", third
    changed = {str(row["order_id"]) for row in rows[100::100]}  # rows 0 was removed
    assert sorted(sent_order_ids(receiver, 1000)) == sorted([*changed, "5000"])
    assert diff_counts(third) == {"new": 1, "changed": 9, "unchanged": 989, "deleted": 2}
    for event in receiver.archived()[1000:]:
        if event["properties"]["order_id"] != "5000":
            assert event["properties"]["total"] == "999.00"
            assert event["messageId"] != first_ids[event["properties"]["order_id"]]
    assert receiver.stats(connection["source_id"])["duplicates"] == 0

    fourth = run_flow(server, flow["id"])  # the changes are in the snapshot now
    assert fourth["counts"]["sent"] == 0, fourth


def test_a_record_changed_back_to_a_version_sent_before_is_not_dropped_as_a_duplicate(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(20)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"]))
    run_flow(server, flow["id"])
    sent_first = rows[7]["total"]

    for total in ("1.00", sent_first):  # changed, then back to what was sent first
        rows[7]["total"] = total
        write_csv(path, rows)
        run = run_flow(server, flow["id"])
        assert diff_counts(run) == {"new": 0, "changed": 1, "unchanged": 19, "deleted": 0}

    events = [e for e in receiver.archived() if e["properties"]["order_id"] == "7"]
    assert [e["properties"]["total"] for e in events] == [sent_first, "1.00", sent_first]
    assert len({e["messageId"] for e in events}) == 3
    assert receiver.stats(connection["source_id"])["duplicates"] == 0


def test_sync_new_sends_only_keys_never_sent(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(50)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"], sync="new"))
    assert run_flow(server, flow["id"])["counts"]["sent"] == 50

    rows[3]["total"] = "1.00"
    write_csv(path, rows + orders(5, start=50))
    run = run_flow(server, flow["id"])

    assert sorted(sent_order_ids(receiver, 50)) == ["50", "51", "52", "53", "54"]
    assert diff_counts(run) == {"new": 5, "changed": 1, "unchanged": 49, "deleted": 0}


def test_a_failed_run_leaves_the_snapshot_as_it_was(
    server: Server, strict_receiver: Receiver, workers: Workers, shop: dict[str, Any],
    tmp_path: Path,
) -> None:
    receiver = strict_receiver
    connection = segment_connection(server, receiver)
    rows = orders(100)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"]))
    run_flow(server, flow["id"])
    for row in rows[:10]:
        row["total"] = "0.50"
    write_csv(path, rows)
    gone = receiver.client.delete(f"/api/sources/{connection['source_id']}")
    assert gone.status_code == 204  # its write key is refused from now on (401)

    failed = run_flow(server, flow["id"])

    assert failed["status"] == "failed", failed
    assert "401" in failed["message"], failed
    _use_new_source(server, receiver, connection)
    again = run_flow(server, flow["id"])
    assert again["status"] == "succeeded", again
    assert diff_counts(again)["changed"] == 10
    assert sorted(sent_order_ids(receiver, 100), key=int) == [str(i) for i in range(10)]


def test_a_canceled_run_leaves_the_snapshot_as_it_was(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver, concurrency_level=1)
    rows = orders(20000)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"]))
    run_flow(server, flow["id"])
    for row in rows:
        row["total"] = "1.00"
    write_csv(path, rows)
    receiver.faults(latency_ms=400)
    started = server.api.post(f"/api/v1/flows/{flow['id']}/runs").json()
    _wait_until_sent(server, started["id"])
    assert server.api.post(f"/api/v1/runs/{started['id']}/cancel").status_code == 200

    canceled = wait_for_run(server, started["id"])

    assert canceled["status"] == "canceled", canceled
    assert canceled["counts"]["sent"] > 0
    receiver.no_faults()
    again = run_flow(server, flow["id"])
    assert diff_counts(again) == {"new": 0, "changed": 20000, "unchanged": 0, "deleted": 0}
    assert again["counts"]["sent"] == 20000


def test_record_errors_are_compared_again_and_a_reset_sends_everything(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(20)
    rows[7]["customer_id"] = ""  # no userId: a record error
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"]))
    first = run_flow(server, flow["id"])
    assert first["status"] == "completed_with_errors", first
    assert first["counts"]["sent"] == 19

    rows[7]["customer_id"] = "c7"
    write_csv(path, rows)
    fixed = run_flow(server, flow["id"])
    assert sent_order_ids(receiver, 19) == ["7"]
    assert diff_counts(fixed)["new"] == 1

    url = f"/api/v1/flows/{flow['id']}/imports/Orders/snapshot/reset"
    for body in ({}, {"confirm": False}):
        refused = server.api.post(url, json=body)
        assert refused.status_code == 422, refused.text
        assert "confirm with confirm: true" in refused.text
    missing = server.api.post(f"/api/v1/flows/{flow['id']}/imports/Nope/snapshot/reset",
                              json={"confirm": True})
    assert missing.status_code == 404 and "Orders" in missing.text
    reset = server.api.post(url, json={"confirm": True})
    assert reset.status_code == 200, reset.text
    assert reset.json()["forgotten"] == 20
    resent = run_flow(server, flow["id"])
    assert resent["counts"]["sent"] == 20
    assert diff_counts(resent)["new"] == 20
    assert receiver.stats(connection["source_id"])["duplicates"] == 20  # same messageIds


def test_the_snapshot_of_an_import_named_with_a_slash_is_reset_through_the_api(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    doc = diff_flow(write_csv(tmp_path / "o.csv", orders(5)), connection["name"])
    doc["imports"][0]["name"] = "EU/Orders"
    flow = create_flow(server, doc)
    run_flow(server, flow["id"])

    reset = server.api.post(f"/api/v1/flows/{flow['id']}/imports/EU%2FOrders/snapshot/reset",
                            json={"confirm": True})

    assert reset.status_code == 200, reset.text  # it was a 404 "Not Found"
    assert reset.json()["forgotten"] == 5
    assert run_flow(server, flow["id"])["counts"]["sent"] == 5


def test_a_diff_sync_needs_the_export_key_field(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    doc = diff_flow(write_csv(tmp_path / "o.csv", orders(3)), connection["name"])
    del doc["export"]["key_field"]

    response = server.api.post("/api/v1/flows", json=doc)

    assert response.status_code == 422
    problems = {p["field"]: p["message"] for p in response.json()["error"]["details"]}
    assert "key_field" in problems["imports.0.sync"]


def _wait_until_sent(server: Server, run_id: str) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.api.get(f"/api/v1/runs/{run_id}").json()["counts"]["sent"]:
            return
        time.sleep(0.05)
    raise AssertionError("the run sent nothing in 60 s")


def _use_new_source(server: Server, receiver: Receiver, connection: dict[str, Any]) -> None:
    write_key = receiver.create_source("Again")["write_key"]
    response = server.api.put(f"/api/v1/connections/{connection['id']}", json={
        "name": connection["name"], "application": "segment",
        "settings": {"write_key": write_key, "endpoint": receiver.url}})
    assert response.status_code == 200, response.text


def test_the_preview_says_which_records_a_run_would_send_and_why(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(3)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"]))
    run_flow(server, flow["id"])
    rows[1]["total"] = "7.00"
    write_csv(path, [*rows, *orders(1, start=3)])

    answer = server.api.post(f"/api/v1/flows/{flow['id']}/preview", json={"limit": 10})

    assert answer.status_code == 200, answer.text
    shown = [(r["calls"][0]["sync"], r["calls"][0]["sends"]) for r in answer.json()["records"]]
    assert shown == [("unchanged", False), ("changed", True), ("unchanged", False),
                     ("new", True)]
    assert len(receiver.archived()) == 3  # a preview sends nothing


@pytest.fixture
def lane_workers(server: Server) -> Iterator[Workers]:
    started = Workers(server.runtime, policy=FAST,
                      lanes=LanePolicy(count=3, min_file_bytes=0, block_records=97))
    started.start()
    yield started
    started.stop()


def test_lanes_hash_their_records_and_the_run_sends_only_what_changed(
    server: Server, receiver: Receiver, lane_workers: Workers, shop: dict[str, Any],
    tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(3000)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"]))
    assert run_flow(server, flow["id"])["counts"]["sent"] == 3000
    for row in rows[5::300]:
        row["total"] = "3.00"
    write_csv(path, rows)

    run = run_flow(server, flow["id"])

    assert run["status"] == "succeeded", run
    assert diff_counts(run) == {"new": 0, "changed": 10, "unchanged": 2990, "deleted": 0}
    assert sorted(sent_order_ids(receiver, 3000), key=int) == [str(i) for i in
                                                               range(5, 3000, 300)]
    assert run_flow(server, flow["id"])["counts"]["sent"] == 0


def test_the_cli_shows_what_the_diff_found_and_resets_a_snapshot_only_when_confirmed(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
    env: dict[str, str],
) -> None:
    from click.testing import CliRunner

    from segbridge.cli.main import cli

    def segbridge(*args: str, stdin: str | None = None) -> Any:
        return CliRunner().invoke(cli, list(args), env=env, input=stdin, obj={})

    connection = segment_connection(server, receiver)
    path = write_csv(tmp_path / "orders.csv", orders(20))
    create_flow(server, diff_flow(path, connection["name"]))
    assert segbridge("flows", "run", "Orders").exit_code == 0
    again = segbridge("flows", "run", "Orders")
    assert again.exit_code == 0, again.output
    assert "Orders: new 0  changed 0  unchanged 20  deleted 0" in again.output

    declined = segbridge("flows", "reset-snapshot", "Orders", "--import", "Orders", stdin="n\n")
    assert declined.exit_code == 1 and "send every record again" in declined.output
    reset = segbridge("flows", "reset-snapshot", "Orders", "--import", "Orders", "--yes")
    assert reset.exit_code == 0, reset.output
    assert "20 key(s) forgotten" in reset.output
    resent = segbridge("flows", "run", "Orders")
    assert "Orders: new 20  changed 0  unchanged 0  deleted 0" in resent.output


def test_deleting_a_flow_deletes_its_snapshots_rows(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    """The rows of a snapshot have no foreign key to it (migration 0012): the flow's deletion
    deletes them, and another flow's stay."""
    from sqlalchemy import func, select

    from segbridge.storage.diff_models import DiffEntry, DiffSnapshot

    connection = segment_connection(server, receiver)
    flows = []
    for name in ("Kept", "Deleted"):
        doc = diff_flow(write_csv(tmp_path / f"{name}.csv", orders(10)), connection["name"])
        doc["name"] = name
        flows.append(create_flow(server, doc))
        assert run_flow(server, flows[-1]["id"])["counts"]["sent"] == 10

    assert server.api.delete(f"/api/v1/flows/{flows[1]['id']}").status_code == 204

    with server.runtime.db.session() as session:
        per_flow = dict(session.execute(
            select(DiffSnapshot.flow_id, func.count()).join(
                DiffEntry, DiffEntry.snapshot_id == DiffSnapshot.id, isouter=True)
            .group_by(DiffSnapshot.flow_id)).all())
        entries = session.scalar(select(func.count()).select_from(DiffEntry))
    assert per_flow == {flows[0]["id"]: 10} and entries == 10


def test_a_retried_error_and_the_next_run_send_one_event_with_one_message_id(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    """A changed record that failed its mapping, retried with an edit, then fixed the same way
    in the source: the retry's messageId names the version it replaces, as the next run's
    does, so Segment keeps one event (found by a tester: two, with two ids)."""
    connection = segment_connection(server, receiver)
    rows = orders(5)
    path = write_csv(tmp_path / "o.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"]))
    run_flow(server, flow["id"])
    rows[2].update(customer_id="", total="99.00")  # changed, and no userId: a record error
    write_csv(path, rows)
    failed = run_flow(server, flow["id"])
    assert failed["status"] == "completed_with_errors", failed
    [error] = server.api.get(f"/api/v1/flows/{flow['id']}/errors").json()
    fixed = {**error["data"], "customer_id": "c2"}

    retried = server.api.post(f"/api/v1/flows/{flow['id']}/errors/retry",
                              json={"error_ids": [error["id"]], "edits": {error["id"]: fixed}})
    assert retried.status_code == 202, retried.text
    retry = wait_for_run(server, retried.json()["id"])
    assert retry["counts"]["sent"] == 1
    assert "changed" not in retry["counts"]["imports"]["Orders"]  # it counts what it sent
    rows[2]["customer_id"] = "c2"  # the same fix in the source
    write_csv(path, rows)
    after = run_flow(server, flow["id"])

    assert after["counts"]["sent"] == 1  # compared again: sent again, with the same id
    changed = [e for e in receiver.archived() if e["properties"]["total"] == "99.00"]
    assert len(changed) == 1, changed
    assert receiver.stats(connection["source_id"])["duplicates"] == 1

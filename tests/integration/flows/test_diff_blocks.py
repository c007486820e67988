"""A diff sync's lanes do not read again the blocks of a file whose every record the snapshot
holds (``runs.diff_blocks``), and whatever they skip, a run sends exactly what comparing
every record would send."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from segbridge.runs.diff_store import DiffRun
from segbridge.storage.diff_models import DiffSnapshot
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import Receiver, orders, segment_connection, write_csv
from tests.integration.flows.test_diff_syncs import (  # noqa: F401
    create_flow,
    diff_counts,
    diff_flow,
    lane_workers,
    run_flow,
    sent_order_ids,
)

pytestmark = pytest.mark.sql

ROWS = 3000  # 31 blocks of 97 (the last one of 90)
BLOCKS = 31


def kept_blocks(server: Server, flow_id: str) -> int:
    with server.runtime.db.session() as session:
        blob = session.scalar(select(DiffSnapshot.settled_blocks).where(
            DiffSnapshot.flow_id == flow_id))
    return len(blob or b"") // 16


def skipped(caplog: pytest.LogCaptureFixture) -> int:
    """The blocks the last run's lanes did not read (from its log)."""
    found = [r.getMessage() for r in caplog.records if "blocks are unchanged" in r.getMessage()]
    caplog.clear()
    return int(found[-1].split(" of ")[0]) if found else 0


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="segbridge.runs.lanes")
    return caplog


def test_an_unchanged_file_s_blocks_are_not_read_again_and_a_change_is_still_sent(
    server: Server, receiver: Receiver, lane_workers: Workers,  # noqa: F811
    shop: dict[str, Any],
    tmp_path: Path, logs: pytest.LogCaptureFixture,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(ROWS)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"]))
    assert run_flow(server, flow["id"])["counts"]["sent"] == ROWS
    assert skipped(logs) == 0
    assert kept_blocks(server, flow["id"]) == BLOCKS  # every record new, each key once

    unchanged = run_flow(server, flow["id"])
    assert skipped(logs) == BLOCKS
    assert unchanged["status"] == "succeeded", unchanged
    assert diff_counts(unchanged) == {"new": 0, "changed": 0, "unchanged": ROWS, "deleted": 0}
    assert unchanged["counts"]["exported"] == unchanged["counts"]["ignored"] == ROWS
    assert unchanged["counts"]["sent"] == 0

    rows[500]["total"] = "7.77"  # one record of block 5 changed
    write_csv(path, rows)
    changed = run_flow(server, flow["id"])
    assert skipped(logs) == BLOCKS - 1
    assert diff_counts(changed) == {"new": 0, "changed": 1, "unchanged": ROWS - 1,
                                    "deleted": 0}
    assert sent_order_ids(receiver, ROWS) == ["500"]
    assert kept_blocks(server, flow["id"]) == 0  # a changed record merged: none kept

    again = run_flow(server, flow["id"])  # every record compared, none sent, all kept
    assert skipped(logs) == 0 and again["counts"]["sent"] == 0
    assert kept_blocks(server, flow["id"]) == BLOCKS
    assert run_flow(server, flow["id"])["counts"]["sent"] == 0
    assert skipped(logs) == BLOCKS


def test_a_key_twice_in_the_file_is_sent_as_comparing_every_record_sends_it(
    server: Server, receiver: Receiver, lane_workers: Workers,  # noqa: F811
    shop: dict[str, Any],
    tmp_path: Path, logs: pytest.LogCaptureFixture,
) -> None:
    """Key 7 in block 0 and again, with another total, in block 25: the snapshot holds the
    later one, so the earlier record is changed at every run (docs/flows.md): no block may
    be kept while a key was sent twice, or block 0 would be skipped and its record never
    compared."""
    connection = segment_connection(server, receiver)
    rows = orders(ROWS)
    rows[2500] = {**rows[7], "total": "99.99"}
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"]))
    run_flow(server, flow["id"])
    assert kept_blocks(server, flow["id"]) == 0

    for turn in range(3):
        run = run_flow(server, flow["id"])
        assert run["counts"]["sent"] == 1, (turn, run)
        assert diff_counts(run)["changed"] == 1
    assert skipped(logs) == 0


def test_a_new_header_a_new_mapping_or_a_reset_sends_again_what_they_change(
    server: Server, receiver: Receiver, lane_workers: Workers,  # noqa: F811
    shop: dict[str, Any],
    tmp_path: Path, logs: pytest.LogCaptureFixture,
) -> None:
    connection = segment_connection(server, receiver)
    path = write_csv(tmp_path / "orders.csv", orders(ROWS))
    doc = diff_flow(path, connection["name"])
    flow = create_flow(server, doc)
    run_flow(server, flow["id"])
    assert kept_blocks(server, flow["id"]) == BLOCKS

    raw = path.read_bytes()  # the same records' bytes under another name for "total"
    path.write_bytes(raw.replace(b"total", b"amount", 1))
    renamed = run_flow(server, flow["id"])
    assert skipped(logs) == 0
    assert diff_counts(renamed)["changed"] == ROWS  # the mapping's "total" is gone from all
    path.write_bytes(raw)
    assert run_flow(server, flow["id"])["counts"]["sent"] == ROWS  # and back
    run_flow(server, flow["id"])  # (settles again)

    doc["imports"][0]["mapping"]["event"] = {"constant": "Order Placed"}
    assert server.api.put(f"/api/v1/flows/{flow['id']}", json=doc).status_code == 200
    remapped = run_flow(server, flow["id"])
    assert skipped(logs) == 0
    assert diff_counts(remapped)["changed"] == ROWS
    assert kept_blocks(server, flow["id"]) == 0
    run_flow(server, flow["id"])
    assert kept_blocks(server, flow["id"]) == BLOCKS

    reset = server.api.post(f"/api/v1/flows/{flow['id']}/imports/Orders/snapshot/reset",
                            json={"confirm": True})
    assert reset.status_code == 200, reset.text
    assert kept_blocks(server, flow["id"]) == 0
    resent = run_flow(server, flow["id"])
    assert skipped(logs) == 0
    assert diff_counts(resent)["new"] == ROWS and resent["counts"]["sent"] == ROWS


def test_a_file_moved_away_once_read_does_not_fail_the_run(
    server: Server, receiver: Receiver, lane_workers: Workers,  # noqa: F811
    shop: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An archiver moves the file once the run has read it: the run ends as it would have
    (it failed at its end, and the next run sent every record again); it keeps no block."""
    connection = segment_connection(server, receiver)
    path = write_csv(tmp_path / "orders.csv", orders(ROWS))
    flow = create_flow(server, diff_flow(path, connection["name"]))
    count_deleted = DiffRun.count_deleted

    def moved_then_counted(diff: DiffRun) -> Any:
        if path.exists():
            path.rename(tmp_path / "archived.csv")
        return count_deleted(diff)

    monkeypatch.setattr(DiffRun, "count_deleted", moved_then_counted)
    first = run_flow(server, flow["id"])
    assert first["status"] == "succeeded", first
    assert kept_blocks(server, flow["id"]) == 0
    monkeypatch.undo()
    (tmp_path / "archived.csv").rename(path)
    assert run_flow(server, flow["id"])["counts"]["sent"] == 0


def test_the_digests_of_blocks_no_longer_in_the_file_are_dropped(
    server: Server, receiver: Receiver, lane_workers: Workers,  # noqa: F811
    shop: dict[str, Any], tmp_path: Path,
) -> None:
    """A row added at the top of the file moves every block: the snapshot keeps the digests
    of the blocks of the file as it is, not of every file it was ever given."""
    connection = segment_connection(server, receiver)
    rows = orders(ROWS)
    path = write_csv(tmp_path / "orders.csv", rows)
    flow = create_flow(server, diff_flow(path, connection["name"]))
    run_flow(server, flow["id"])
    for extra in range(3):
        rows.insert(0, orders(1, start=ROWS + extra)[0])
        write_csv(path, rows)
        assert run_flow(server, flow["id"])["counts"]["sent"] == 1
        assert kept_blocks(server, flow["id"]) <= BLOCKS + 1

"""Runs nobody owns: a run whose process was killed is taken over by a live server (a lease
with heartbeats, claimed atomically), without a restart; records still arrive exactly once."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from segbridge.core.clock import utcnow
from segbridge.core.settings import Settings, load_settings
from segbridge.runs.counts import Tally
from segbridge.runs.store import (
    LeaseLost,
    Orphan,
    RunStore,
    create_run,
    orphaned_runs,
    take_over,
)
from segbridge.storage.db import Database
from segbridge.storage.models import Flow, Run
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    FAST,
    Receiver,
    assert_invariant,
    orders,
    segment_connection,
    track_flow,
    wait_for_run,
    write_csv,
)
from tests.integration.flows.test_faults import cli, delivered_once
from tests.integration.flows.test_flow_runs import create_flow, run_flow
from tests.integration.flows.test_lanes import (
    LANES,
    assert_no_lane_left,
    lane_pids,
    slow_run_in_lanes,
)
from tests.integration.flows.test_lanes import ROWS as LANE_ROWS

LEASE = 5  # seconds: a killed owner's run is taken over within half of it on this host
ROWS = 20_000


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Where the flows' files are (an allowed file root)."""
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(tmp_path: Path, database_url: str, data: Path) -> Settings:
    return load_settings(home=tmp_path / "home", database_url=database_url,
                         http_timeout_seconds=3.0, run_lease_seconds=LEASE,
                         file_roots=str(data))


@pytest.fixture
def server_workers(server: Server) -> Iterator[Workers]:
    started = Workers(server.runtime, policy=FAST)
    started.start()
    yield started
    started.stop()


def test_a_killed_cli_run_is_taken_over_by_the_running_server(
    server: Server, receiver: Receiver, server_workers: Workers, shop: dict[str, Any],
    data: Path,
) -> None:
    connection = segment_connection(server, receiver, concurrency_level=1)
    flow = create_flow(server, track_flow(
        "Orders", write_csv(data / "o.csv", orders(ROWS)), connection["name"]))
    receiver.faults(latency_ms=150)  # a slow receiver: the run is still going when killed
    terminal = cli(server, "flows", "run", "Orders", "--here",
                   env={"SEGBRIDGE_RUN_LEASE_SECONDS": str(LEASE),
                        "SEGBRIDGE_FILE_ROOTS": str(data)})
    run_id = first_checkpoint(server, flow["id"])

    terminal.send_signal(signal.SIGKILL)
    terminal.communicate(timeout=10)  # reaped, its output pipe closed
    killed_at = time.monotonic()
    taken_after = until_taken_over(server, run_id, 4 * LEASE) - killed_at
    receiver.no_faults()
    run = wait_for_run(server, run_id)

    # the server noticed within half a lease (its check period), plus a little slack
    assert taken_after < LEASE, f"taken over {taken_after:.1f} s after the kill"
    assert run["status"] == "succeeded", run
    assert f"taken over from {socket.gethostname()}:{terminal.pid}" in run["message"]
    assert "its process had ended" in run["message"]
    assert run["counts"]["exported"] == run["counts"]["sent"] == ROWS
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, ROWS)
    # the flow is free again: a new run starts at once
    again = server.api.post(f"/api/v1/flows/{flow['id']}/runs")
    assert again.status_code == 202, again.text
    assert wait_for_run(server, again.json()["id"])["status"] == "succeeded"


def test_a_stalled_cli_run_is_taken_over_when_its_lease_expires_and_then_stops(
    server: Server, receiver: Receiver, server_workers: Workers, shop: dict[str, Any],
    data: Path,
) -> None:
    connection = segment_connection(server, receiver, concurrency_level=1)
    flow = create_flow(server, track_flow(
        "Orders", write_csv(data / "o.csv", orders(ROWS)), connection["name"]))
    receiver.faults(latency_ms=150)
    terminal = cli(server, "flows", "run", "Orders", "--here",
                   env={"SEGBRIDGE_RUN_LEASE_SECONDS": str(LEASE),
                        "SEGBRIDGE_FILE_ROOTS": str(data)})
    run_id = first_checkpoint(server, flow["id"])

    terminal.send_signal(signal.SIGSTOP)  # alive, but silent: no heartbeat any more
    stopped_at = time.monotonic()
    try:
        taken_after = until_taken_over(server, run_id, 4 * LEASE) - stopped_at
    finally:
        terminal.send_signal(signal.SIGCONT)
    output, _ = terminal.communicate(timeout=60)
    receiver.no_faults()
    run = wait_for_run(server, run_id)

    # expired after two leases without a heartbeat, seen within half a lease more
    assert LEASE <= taken_after < 3 * LEASE, f"taken over {taken_after:.1f} s after the stop"
    assert f"taken over from {socket.gethostname()}:{terminal.pid} (no heartbeat for" \
        in run["message"]
    assert terminal.returncode == 1, output.decode()  # it stopped: its run is the server's
    assert "taken over by another process" in output.decode()
    assert run["status"] == "succeeded", run
    assert run["counts"]["exported"] == run["counts"]["sent"] == ROWS
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, ROWS)


def first_checkpoint(server: Server, flow_id: str) -> str:
    """The id of the flow's latest run, once it has committed its first chunk."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = server.api.get(f"/api/v1/flows/{flow_id}/runs").json()
        if runs and runs[0]["checkpoint"] > 0:
            return str(runs[0]["id"])
        time.sleep(0.05)
    raise AssertionError("the run never reached a checkpoint")


def until_taken_over(server: Server, run_id: str, timeout: float) -> float:
    """When (monotonic) the run's message first says it was taken over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = server.api.get(f"/api/v1/runs/{run_id}").json()
        if "taken over from" in (run["message"] or ""):
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} was not taken over within {timeout} s")


def expired_run(db: Database, flow_id: str, owner: str, silent_seconds: float) -> str:
    """A running run of ``owner`` whose last heartbeat was ``silent_seconds`` ago."""
    with db.session() as session:
        flow = session.get(Flow, flow_id)
        assert flow is not None
        run = create_run(session, flow, trigger="manual", fresh_message_ids=False,
                         definition=dict(flow.definition))
        run.status, run.owner = "running", owner
        run.heartbeat_at = utcnow() - timedelta(seconds=silent_seconds)
        return run.id


def claimed_at_once(servers: list[Database], orphan: Orphan) -> list[bool]:
    """Each server claims the run at the same moment (in its own thread): who won."""
    won: list[bool] = []
    start = threading.Barrier(len(servers))

    def claim(db: Database) -> None:
        start.wait()
        won.append(take_over(db, orphan))

    threads = [threading.Thread(target=claim, args=(db,)) for db in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return won


def test_of_two_servers_claiming_an_expired_run_exactly_one_wins(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
) -> None:
    connection = segment_connection(server, receiver)
    flows = [create_flow(server, track_flow(f"Orders {i}", write_csv(
        data / f"{i}.csv", orders(10)), connection["name"])) for i in range(10)]
    url = server.runtime.settings.resolved_database_url
    servers = [Database(url), Database(url)]  # two processes' engines, as two servers have
    try:
        for flow in flows:
            run_id = expired_run(server.runtime.db, flow["id"], "elsewhere:4242", 3 * LEASE)
            [orphan] = [o for o in orphaned_runs(servers[0], LEASE) if o.run_id == run_id]
            assert orphan.why.startswith("no heartbeat for")
            assert sorted(claimed_at_once(servers, orphan)) == [False, True]
            # the old owner, were it only slow, may not write the run any more
            with pytest.raises(LeaseLost):
                old = RunStore(server.runtime.db, run_id, LEASE)
                old.owner = "elsewhere:4242"
                old.commit_chunk(10, Tally(), [])
            with server.runtime.db.session() as session:
                run = session.get(Run, run_id)
                assert run is not None and run.checkpoint == 0
                assert run.message == "taken over from elsewhere:4242 (no heartbeat for 15 s)"
    finally:
        for db in servers:
            db.dispose()


@pytest.mark.postgres
def test_an_owner_frozen_while_it_writes_its_run_does_not_keep_the_run_from_being_taken_over(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process stopped (SIGSTOP, a paused machine) in the middle of a chunk's commit holds
    the run's row lock on PostgreSQL: a claim does not wait for it for ever (the take-over
    tick goes on), the server ends the frozen transaction after two leases, the run is then
    taken over, and the old owner, back, writes nothing."""
    if server.runtime.db.engine.dialect.name != "postgresql":
        pytest.skip("the row locks of PostgreSQL (SQLite has one writer for the whole file)")
    connection = segment_connection(server, receiver)
    flow = create_flow(server, track_flow("Orders", write_csv(data / "o.csv", orders(10)),
                                          connection["name"]))
    run_id = expired_run(server.runtime.db, flow["id"], "elsewhere:4242", 3 * LEASE)
    [orphan] = [o for o in orphaned_runs(server.runtime.db, LEASE) if o.run_id == run_id]
    frozen, back = threading.Event(), threading.Event()
    real_get = RunStore._get

    def freeze_after_the_row_is_written(store: RunStore, session: Any) -> Run:
        frozen.set()
        back.wait(60)  # the owner stops here, its transaction open
        return real_get(store, session)

    monkeypatch.setattr(RunStore, "_get", freeze_after_the_row_is_written)
    old = RunStore(server.runtime.db, run_id, LEASE)
    old.owner = "elsewhere:4242"
    outcome: list[BaseException | None] = []

    def commit() -> None:
        try:
            old.commit_chunk(10, Tally(), [])
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    writer = threading.Thread(target=commit)
    writer.start()
    try:
        assert frozen.wait(30)
        started = time.monotonic()
        assert take_over(server.runtime.db, orphan) is False  # the row is held: not now
        assert time.monotonic() - started < 10  # and the claim did not wait for the owner
        taken = False
        while not taken and time.monotonic() - started < 6 * LEASE:
            taken = take_over(server.runtime.db, orphan)  # the take-over tick, again
            time.sleep(0.5)
        assert taken, "not taken over while its owner stayed frozen"
        assert time.monotonic() - started < 4 * LEASE  # two leases idle, then the next claim
    finally:
        back.set()
        writer.join(30)
    assert outcome and outcome[0] is not None  # the old owner's commit did not go through
    with server.runtime.db.session() as session:
        run = session.get(Run, run_id)
        assert run is not None and run.checkpoint == 0
        assert run.owner == f"{socket.gethostname()}:{os.getpid()}"


def test_a_run_of_another_host_with_a_fresh_heartbeat_is_left_alone(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
) -> None:
    connection = segment_connection(server, receiver)
    flow = create_flow(server, track_flow("Orders", write_csv(data / "o.csv", orders(10)),
                                          connection["name"]))
    run_id = expired_run(server.runtime.db, flow["id"], "elsewhere:4242", LEASE)  # 1 lease

    assert run_id not in [o.run_id for o in orphaned_runs(server.runtime.db, LEASE)]
    resumed = server.api.post(f"/api/v1/runs/{run_id}/resume")
    assert resumed.status_code == 409
    assert "is being executed by elsewhere:4242" in resumed.json()["error"]["message"]


# ---- lanes that die ------------------------------------------------------------------------

@pytest.fixture
def lane_workers(server: Server) -> Iterator[Workers]:
    started = Workers(server.runtime, policy=FAST, lanes=LANES)
    started.start()
    yield started
    started.stop()


def delivered_exactly_once(receiver: Receiver, run: dict[str, Any]) -> None:
    """The receiver holds one event per call the run counts as sent, each messageId once."""
    archived = receiver.archived()
    assert len(archived) == run["counts"]["sent"]
    assert len({e["messageId"] for e in archived}) == len(archived)


def kill_lanes_until_it_ends(server: Server, run_id: str) -> dict[str, Any]:
    """SIGKILL every lane process, again and again, as long as the run goes on."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for pid in lane_pids():
            os.kill(pid, signal.SIGKILL)
        run: dict[str, Any] = server.api.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] in ("succeeded", "completed_with_errors", "failed", "canceled"):
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} went on for 120 s")


def test_a_lane_that_dies_is_started_again_and_every_record_arrives_once(
    server: Server, receiver: Receiver, lane_workers: Workers, shop: dict[str, Any],
    data: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="segbridge.runs.lanes")
    flow, run_id, pids = slow_run_in_lanes(server, receiver, data)
    os.kill(pids[0], signal.SIGKILL)
    time.sleep(1)
    receiver.no_faults()

    run = wait_for_run(server, run_id)

    assert "lane 0 ended unexpectedly (exit code -9); starting it again" in caplog.text
    assert run["status"] == "completed_with_errors", run  # (the file's bad rows)
    assert run["counts"]["exported"] == LANE_ROWS
    assert_invariant(server, flow["id"], run)
    delivered_exactly_once(receiver, run)
    assert_no_lane_left()


def test_a_run_whose_lanes_keep_dying_fails_as_crashed_and_resumes_to_the_end(
    server: Server, receiver: Receiver, lane_workers: Workers, shop: dict[str, Any],
    data: Path,
) -> None:
    flow, run_id, _pids = slow_run_in_lanes(server, receiver, data)
    crashed = kill_lanes_until_it_ends(server, run_id)
    receiver.no_faults()
    assert crashed["status"] == "failed"
    assert crashed["message"].startswith("crashed: lane "), crashed["message"]
    assert f"segbridge runs resume {run_id}" in crashed["message"]
    assert crashed["checkpoint"] < LANE_ROWS
    assert_no_lane_left()

    resumed = server.api.post(f"/api/v1/runs/{run_id}/resume")
    assert resumed.status_code == 202, resumed.text
    run = wait_for_run(server, run_id)

    assert run["status"] == "completed_with_errors", run
    assert run["counts"]["exported"] == LANE_ROWS
    assert_invariant(server, flow["id"], run)
    delivered_exactly_once(receiver, run)


def test_a_run_failed_for_its_data_cannot_be_resumed(
    server: Server, receiver: Receiver, lane_workers: Workers, shop: dict[str, Any],
    data: Path,
) -> None:
    connection = segment_connection(server, receiver)
    path = data / "o.csv"
    path.write_bytes(b"order_id,customer_\xff_id\n1,c1\n")
    flow = create_flow(server, track_flow("Orders", path, connection["name"]))
    run = run_flow(server, flow["id"])
    assert run["status"] == "failed"

    by_api = server.api.post(f"/api/v1/runs/{run['id']}/resume")
    by_cli = cli(server, "runs", "resume", run["id"], "--here",
                 env={"SEGBRIDGE_FILE_ROOTS": str(data)})
    output, _ = by_cli.communicate(timeout=60)

    refusal = "failed for its data or configuration"
    assert by_api.status_code == 409
    assert refusal in by_api.json()["error"]["message"]
    assert "can be resumed" in by_api.json()["error"]["message"]
    assert by_cli.returncode != 0 and refusal in output.decode()
    assert server.api.get(f"/api/v1/runs/{run['id']}").json()["status"] == "failed"


def test_a_resumed_run_with_record_errors_before_its_checkpoint_ends_with_errors(
    server: Server, receiver: Receiver, server_workers: Workers, shop: dict[str, Any],
    data: Path,
) -> None:
    """Errors committed before a run's process died still count at its end: a resumed or
    taken-over run with them is completed with errors, never succeeded (found by a tester:
    'succeeded' with failed: 4, the errors open)."""
    connection = segment_connection(server, receiver)
    rows = orders(30)
    for row in rows[:4]:
        row["customer_id"] = ""  # no userId: a record error each
    flow = create_flow(server, track_flow("Orders", write_csv(data / "o.csv", rows),
                                          connection["name"]))
    first = run_flow(server, flow["id"])
    assert first["status"] == "completed_with_errors" and first["counts"]["failed"] == 4
    with server.runtime.db.session() as session:  # its process died after its last commit
        run = session.get(Run, first["id"])
        assert run is not None and run.checkpoint == 30
        run.status, run.message, run.finished_at = "failed", "crashed: it ended", None
        flow_row = session.get(Flow, flow["id"])
        assert flow_row is not None
        flow_row.active_run_id = None

    assert server.api.post(f"/api/v1/runs/{first['id']}/resume").status_code == 202
    resumed = wait_for_run(server, first["id"])

    assert resumed["status"] == "completed_with_errors", resumed
    assert resumed["counts"]["failed"] == 4 and resumed["counts"]["sent"] == 26
    assert "4 record error(s)" in resumed["message"]


def test_a_chunk_whose_commit_failed_is_done_again_not_lost(
    server: Server, receiver: Receiver, server_workers: Workers, shop: dict[str, Any],
    data: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chunk's commit that fails with a database error (PostgreSQL ended a transaction its
    process sat in for two leases; the database went away) stops the run there: it used to go
    on, and the next chunk's commit moved the checkpoint past the lost chunk's counts and
    record errors (the run ended 'succeeded' without them). Taken over, it resumes from its
    checkpoint: every record counted once, every error kept, every event once."""
    rows = orders(ROWS)
    for row in rows[::5000]:
        row["customer_id"] = ""  # a record error in each quarter of the file
    connection = segment_connection(server, receiver, concurrency_level=1)
    flow = create_flow(server, track_flow("Orders", write_csv(data / "o.csv", rows),
                                          connection["name"]))
    real_commit = RunStore.commit_chunk
    commits: list[int] = []

    def commit_failing_once(store: RunStore, *args: Any, **kwargs: Any) -> None:
        commits.append(1)
        if len(commits) == 2:
            raise OperationalError("UPDATE runs ...", {}, Exception("server closed the connection"))
        real_commit(store, *args, **kwargs)

    monkeypatch.setattr(RunStore, "commit_chunk", commit_failing_once)
    started = server.api.post(f"/api/v1/flows/{flow['id']}/runs")
    assert started.status_code == 202, started.text
    run = wait_for_run(server, started.json()["id"], timeout=90)

    assert run["status"] == "completed_with_errors", run
    assert "taken over" in run["message"]
    assert run["counts"]["exported"] == ROWS and run["counts"]["failed"] == 4
    assert run["counts"]["sent"] == ROWS - 4
    errors = server.api.get(f"/api/v1/flows/{flow['id']}/errors").json()
    assert sorted(e["position"] for e in errors) == [0, 5000, 10000, 15000]
    assert_invariant(server, flow["id"], run)
    assert len({e["properties"]["order_id"] for e in receiver.archived()}) == ROWS - 4

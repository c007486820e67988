"""Reliability against the receiver's injected faults: after every run the receiver's archive
holds exactly one event per exported record, and exported = sent + open errors + ignored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segbridge.core.clock import SimulatedClock
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    FAST,
    Receiver,
    assert_invariant,
    orders,
    segment_connection,
    simulated_receiver,
    started_workers,
    track_flow,
    wait_for_run,
    write_csv,
)
from tests.integration.flows.test_flow_runs import create_flow, run_flow

ROWS = 4000


def delivered_once(receiver: Receiver, count: int) -> None:
    events = receiver.archived()
    ids = [e["properties"]["order_id"] for e in events]
    assert len(ids) == count, f"{len(ids)} events archived for {count} records"
    assert len(set(ids)) == count


@pytest.mark.parametrize("faults", [
    pytest.param({"error_500": 0.3}, id="30% 500s"),
    pytest.param({"error_429": 0.3, "retry_after": 1}, id="429 with Retry-After"),
    pytest.param({"drop": 0.3}, id="dropped connections"),
])
def test_a_run_delivers_everything_once_through_faults(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
    faults: dict[str, Any],
) -> None:
    connection = segment_connection(server, receiver, concurrency_level=4)
    flow = create_flow(server, track_flow(
        "Orders", write_csv(tmp_path / "o.csv", orders(ROWS)), connection["name"]))
    receiver.faults(**faults)
    run = run_flow(server, flow["id"])
    receiver.no_faults()
    assert run["status"] == "succeeded", run
    assert run["counts"]["retried"] > 0
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, ROWS)


@pytest.mark.in_process
def test_slow_answers_past_the_timeout_pause_the_run_which_resumes(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    workers.stop()
    slow_workers = Workers(server.runtime, policy=workers.executor.policy, http_timeout=1.0)
    slow_workers.start()
    try:
        connection = segment_connection(server, receiver)
        flow = create_flow(server, track_flow(
            "Orders", write_csv(tmp_path / "o.csv", orders(ROWS)), connection["name"]))
        receiver.faults(latency_ms=1500)
        statuses: list[str] = []
        response = server.api.post(f"/api/v1/flows/{flow['id']}/runs")
        run_id = response.json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "paused" not in statuses:
            statuses.append(server.api.get(f"/api/v1/runs/{run_id}").json()["status"])
            time.sleep(0.1)
        offline = server.api.get(f"/api/v1/connections/{connection['id']}").json()["status"]
        receiver.no_faults()
        run = wait_for_run(server, run_id)
    finally:
        slow_workers.stop()
    assert "paused" in statuses and offline == "offline"
    assert run["status"] == "succeeded"
    back = server.api.get(f"/api/v1/connections/{connection['id']}").json()["status"]
    assert back == "online"
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, ROWS)


def test_a_receiver_down_for_20_seconds_loses_nothing(
    server: Server, shop: dict[str, Any], tmp_path: Path,
) -> None:
    clock = SimulatedClock()  # the receiver's downtime and the run's waits: no real 20 s
    with simulated_receiver(tmp_path, clock) as receiver, \
            started_workers(Workers(server.runtime, policy=FAST, clock=clock)):
        connection = segment_connection(server, receiver)
        flow = create_flow(server, track_flow(
            "Orders", write_csv(tmp_path / "o.csv", orders(ROWS)), connection["name"]))
        receiver.faults(down_seconds=20)
        run = run_flow(server, flow["id"])
        assert sum(clock.slept) >= 15  # the run waited the receiver out
        assert run["status"] == "succeeded", run
        assert_invariant(server, flow["id"], run)
        delivered_once(receiver, ROWS)


IN_LANES = {"SEGBRIDGE_RUN_LANES": "2", "SEGBRIDGE_RUN_LANES_MIN_FILE_MB": "0"}


def cli(server: Server, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    settings = server.runtime.settings
    env = {**os.environ, "SEGBRIDGE_HOME": str(settings.home),
           "SEGBRIDGE_DATABASE_URL": settings.resolved_database_url,
           "SEGBRIDGE_FILE_ROOTS": settings.file_roots, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "segbridge.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def lane_processes(server: Server) -> list[int]:
    """Lane processes of runs of this server's home (whoever their parent is now)."""
    home = f"SEGBRIDGE_HOME={server.runtime.settings.home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if b"segbridge.runs.lanes" in (entry / "cmdline").read_bytes() \
                    and home in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def killed_mid_run(server: Server, receiver: Receiver, tmp_path: Path, rows: int,
                   env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    connection = segment_connection(server, receiver, concurrency_level=1)
    flow = create_flow(server, track_flow(
        "Orders", write_csv(tmp_path / "o.csv", orders(rows)), connection["name"]))
    receiver.faults(latency_ms=150)
    process = cli(server, "flows", "run", "Orders", "--here", env=env)
    run_id = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = server.api.get(f"/api/v1/flows/{flow['id']}/runs").json()
        if runs and runs[0]["checkpoint"] > 0:
            run_id = runs[0]["id"]
            break
        time.sleep(0.05)
    lanes = lane_processes(server)
    assert bool(lanes) == bool(env), "a run in lanes has lane processes, and only then"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)  # reaped, its output pipe closed
    deadline = time.monotonic() + 10  # a lane ends on its next write to the dead process
    while lane_processes(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lane_processes(server) == []
    receiver.no_faults()
    assert run_id, "the run never reached a checkpoint"
    run = server.api.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "running" and 0 < run["checkpoint"] < rows
    return flow, run_id


@pytest.mark.parametrize("env", [pytest.param(None, id="one producer"),
                                 pytest.param(IN_LANES, id="in lanes")])
def test_a_run_killed_with_sigkill_is_resumed_by_command(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
    env: dict[str, str] | None,
) -> None:
    rows = 100_000 if env else 30_000  # lanes: 13 blocks, so lanes are still reading at the kill
    flow, run_id = killed_mid_run(server, receiver, tmp_path, rows, env)
    resumed = cli(server, "runs", "resume", run_id, "--here", env=env)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output.decode()
    run = server.api.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "succeeded"
    assert run["counts"]["exported"] == run["counts"]["sent"] == rows
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, rows)


@pytest.mark.in_process
def test_a_run_killed_with_sigkill_is_resumed_when_the_server_starts(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
) -> None:
    rows = 30_000
    flow, run_id = killed_mid_run(server, receiver, tmp_path, rows)
    workers = Workers(server.runtime)
    assert workers.start() == [run_id]
    try:
        run = wait_for_run(server, run_id)
    finally:
        workers.stop()
    assert run["status"] == "succeeded"
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, rows)


@pytest.mark.in_process
def test_concurrency_stays_within_the_connection_level(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    lender = segment_connection(server, receiver, name="Lender", concurrency_level=2)
    borrower = segment_connection(server, receiver, name="Borrower",
                                  borrow_concurrency_from=lender["id"])
    one = create_flow(server, track_flow("One", write_csv(tmp_path / "1.csv", orders(20_000)),
                                         "Lender"))
    two = create_flow(server, track_flow("Two", write_csv(tmp_path / "2.csv", orders(20_000)),
                                         "Borrower"))
    receiver.faults(latency_ms=300)  # sending is the bottleneck, even on a busy machine
    runs = [server.api.post(f"/api/v1/flows/{f['id']}/runs").json() for f in (one, two)]
    done = [wait_for_run(server, r["id"]) for r in runs]
    receiver.no_faults()
    assert [r["status"] for r in done] == ["succeeded", "succeeded"]
    # seen by the receiver: both flows together never had more than 2 requests in flight
    assert receiver.client.get("/api/receiver").json()["peak_in_flight"] == 2
    assert workers.executor.governor.peak_in_flight(lender["id"]) == 2
    assert borrower["effective_concurrency"]["lender_id"] == lender["id"]



@pytest.fixture
def patient_workers(server: Server) -> Iterator[Workers]:
    """The server's workers with the CLI's default request timeout (30 s, not the suite's
    3 s): on a busy machine a slowed request is not abandoned and sent again while the
    receiver still holds it, which the receiver would count as one more in flight."""
    started = Workers(server.runtime, policy=FAST, http_timeout=30.0)
    started.start()
    yield started
    started.stop()


def test_a_terminal_run_and_a_server_run_share_the_connection_limit(
    server: Server, receiver: Receiver, patient_workers: Workers, shop: dict[str, Any],
    tmp_path: Path,
) -> None:
    segment_connection(server, receiver, name="Shared", concurrency_level=2)
    one = create_flow(server, track_flow(
        "In the server", write_csv(tmp_path / "1.csv", orders(60_000)), "Shared"))
    two = create_flow(server, track_flow(
        "In a terminal", write_csv(tmp_path / "2.csv", orders(20_000, start=60_000)), "Shared"))
    receiver.faults(latency_ms=600)  # the server's run lasts while the CLI starts (its
    # imports took over 3 s on a loaded machine, and the run was over before the other began)
    in_server = server.api.post(f"/api/v1/flows/{one['id']}/runs").json()
    settings = server.runtime.settings
    env = {**os.environ, "SEGBRIDGE_HOME": str(settings.home),
           "SEGBRIDGE_DATABASE_URL": settings.resolved_database_url,
           "SEGBRIDGE_FILE_ROOTS": settings.file_roots}
    in_terminal = subprocess.run(
        [sys.executable, "-m", "segbridge.cli", "flows", "run", "In a terminal", "--here"],
        env=env, capture_output=True, text=True, timeout=300)
    done = wait_for_run(server, in_server["id"])
    receiver.no_faults()

    assert in_terminal.returncode == 0, in_terminal.stderr
    [terminal_run] = server.api.get(f"/api/v1/flows/{two['id']}/runs").json()
    assert done["status"] == terminal_run["status"] == "succeeded"
    assert terminal_run["started_at"] < done["finished_at"]  # the two runs overlapped
    assert done["started_at"] < terminal_run["finished_at"]
    # two processes, one connection of level 2: never more than 2 requests at once
    assert receiver.client.get("/api/receiver").json()["peak_in_flight"] == 2
    assert len(receiver.archived()) == 80_000

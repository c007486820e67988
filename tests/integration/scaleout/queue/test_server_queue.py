"""The server with PostgreSQL: it executes runs as one more queue worker (a one-machine
install needs no ``segbridge worker``), or only enqueues (``server_executes_runs`` off); a run
whose job was never enqueued (deferring failed) is enqueued again by the take-over tick."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from segbridge.runtime import cli_principal
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
from tests.integration.flows.test_faults import delivered_once
from tests.integration.flows.test_flow_runs import create_flow
from tests.integration.scaleout.queue.conftest import LEASE
from tests.integration.scaleout.queue.conftest import Workers as WorkerProcesses
from tests.integration.scaleout.queue.test_worker_queue import run_row, start_run

pytestmark = pytest.mark.postgres


def a_flow(server: Server, receiver: Receiver, data: Path, rows: int = 30) -> dict[str, Any]:
    connection = segment_connection(server, receiver)
    return create_flow(server, track_flow("Orders", write_csv(data / "o.csv", orders(rows)),
                                          connection["name"]))


def test_the_server_executes_runs_from_the_queue_by_default(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
) -> None:
    flow = a_flow(server, receiver, data)
    workers = Workers(server.runtime, policy=FAST)
    assert workers.queue_worker is not None  # (the default: server_executes_runs)
    workers.start()
    try:
        run = wait_for_run(server, start_run(server, flow["id"]), timeout=30)
    finally:
        workers.stop()

    assert run["status"] == "succeeded", run
    assert run_row(server, run["id"]).owner == f"{socket.gethostname()}:{os.getpid()}"
    delivered_once(receiver, 30)


def test_a_server_that_does_not_execute_runs_only_enqueues_them(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
    workers: WorkerProcesses,
) -> None:
    flow = a_flow(server, receiver, data)
    only_enqueues = dataclasses.replace(server.runtime, settings=server.runtime.settings
                                        .model_copy(update={"server_executes_runs": False}))
    background = Workers(only_enqueues, policy=FAST)
    assert background.queue_worker is None
    background.start()
    try:
        run_id = start_run(server, flow["id"])
        time.sleep(2)
        assert run_row(server, run_id).status == "queued"
        worker = workers.start()
        run = wait_for_run(server, run_id, timeout=45)
    finally:
        background.stop()

    assert run["status"] == "succeeded", run
    assert run_row(server, run_id).owner == f"{socket.gethostname()}:{worker.pid}"
    delivered_once(receiver, 30)


def test_a_queued_run_whose_job_was_never_enqueued_is_enqueued_again(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
    workers: WorkerProcesses,
) -> None:
    flow = a_flow(server, receiver, data)
    worker = workers.start()
    workers.wait_ready(worker)
    lost = server.runtime.flows.start_run(cli_principal(server.runtime), flow["id"],
                                          execute=False)  # (as when deferring failed)
    created_at = time.monotonic()

    run = wait_for_run(server, lost.id, timeout=6 * LEASE)

    # queued and silent for two leases, then seen at the next take-over tick
    assert time.monotonic() - created_at < 4 * LEASE
    assert run["status"] == "succeeded", run
    assert "taken over from nobody" in run["message"]
    delivered_once(receiver, 30)


def test_a_run_waits_in_the_queue_once_however_often_it_is_enqueued(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
) -> None:
    flow = a_flow(server, receiver, data)
    run_id = start_run(server, flow["id"])  # (nobody works the queue in this test)

    for _ in range(3):  # the API, a take-over, a resume racing: one job
        server.runtime.run_queue.enqueue(run_id)

    with server.runtime.db.engine.connect() as connection:
        jobs = connection.exec_driver_sql(
            "SELECT status::text, queueing_lock, lock FROM procrastinate_jobs "
            "WHERE args->>'run_id' = %(run)s", {"run": run_id}).all()
    assert [tuple(job) for job in jobs] == [("todo", run_id, f"flow:{flow['id']}")]


def test_a_worker_on_sqlite_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")}
    done = subprocess.run(
        [sys.executable, "-m", "segbridge.cli", "worker"], capture_output=True, text=True,
        timeout=60, env={**env, "SEGBRIDGE_HOME": str(tmp_path / "home")}, check=False)

    assert done.returncode != 0
    assert "segbridge worker needs PostgreSQL" in done.stderr
    assert not (tmp_path / "home").exists()  # nothing created

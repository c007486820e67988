"""A run and its job in one transaction: the services insert the run's procrastinate job in
the transaction that creates or reopens the run, so both are committed or neither is, and a
run already waiting keeps one job without failing the caller's transaction. With SQLite the
in-process queue hands the run over only once that transaction has committed."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from segbridge.core.clock import utcnow
from segbridge.queueing.jobs import JobQueue
from segbridge.runs.queue import RunQueue
from segbridge.runs.store import create_run
from segbridge.runtime import cli_principal
from segbridge.storage.db import Database
from segbridge.storage.models import Flow, Run
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
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
JOBS_OF_RUN = text(
    "SELECT status::text AS status, queueing_lock, lock, queue_name, task_name "
    "FROM procrastinate_jobs WHERE args->>'run_id' = :run")


def a_flow(server: Server, receiver: Receiver, data: Path, rows: int = 20) -> dict[str, Any]:
    connection = segment_connection(server, receiver)
    return create_flow(server, track_flow("Orders", write_csv(data / "o.csv", orders(rows)),
                                          connection["name"]))


def jobs_of(server: Server, run_id: str) -> list[dict[str, Any]]:
    with server.runtime.db.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(JOBS_OF_RUN, {"run": run_id})]


def runs_of_flow(server: Server, flow_id: str) -> int:
    with server.runtime.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Run)
                                  .where(Run.flow_id == flow_id)) or 0)


def job_queue(server: Server) -> JobQueue:
    queue = server.runtime.run_queue
    assert isinstance(queue, JobQueue)  # (PostgreSQL: the runtime's queue is the job queue)
    return queue


def test_a_run_started_through_the_api_has_its_job_once_the_call_returns(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
) -> None:
    flow = a_flow(server, receiver, data)

    run_id = start_run(server, flow["id"])  # (nobody works the queue in this test)

    [job] = jobs_of(server, run_id)
    assert (job["status"], job["queueing_lock"], job["lock"]) == (
        "todo", run_id, f"flow:{flow['id']}")
    assert (job["queue_name"], job["task_name"]) == ("runs", "segbridge.execute_run")
    assert run_row(server, run_id).status == "queued"


def test_a_transaction_rolled_back_after_enqueueing_leaves_neither_run_nor_job(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
) -> None:
    flow = a_flow(server, receiver, data)
    enqueued: list[str] = []

    with pytest.raises(RuntimeError, match="after enqueueing"), \
            server.runtime.db.session() as session:
        row = session.get(Flow, flow["id"])
        assert row is not None
        run = create_run(session, row, trigger="manual", fresh_message_ids=False,
                         definition=dict(row.definition))
        job_queue(server).enqueue_in(session, run.id, run.flow_id)
        enqueued.append(run.id)
        raise RuntimeError("the caller fails after enqueueing")

    assert jobs_of(server, enqueued[0]) == []
    assert runs_of_flow(server, flow["id"]) == 0
    with server.runtime.db.session() as session:  # the flow is free to run
        assert session.scalar(select(Flow.active_run_id).where(Flow.id == flow["id"])) is None
    assert len(jobs_of(server, start_run(server, flow["id"]))) == 1


def test_enqueueing_a_run_that_waits_already_keeps_one_job_and_the_transaction_commits(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
) -> None:
    flow = a_flow(server, receiver, data)
    run_id = start_run(server, flow["id"])

    with server.runtime.db.session() as session:  # a resume and a take-over racing
        run = session.get(Run, run_id)
        assert run is not None
        run.message = "written in the same transaction"
        job_queue(server).enqueue_in(session, run_id, flow["id"])
        job_queue(server).enqueue_in(session, run_id, flow["id"])

    assert [job["status"] for job in jobs_of(server, run_id)] == ["todo"]
    assert run_row(server, run_id).message == "written in the same transaction"


def test_a_retry_of_errors_is_queued_with_its_job(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
) -> None:
    flow = a_flow(server, receiver, data)
    first = server.runtime.flows.start_run(cli_principal(server.runtime), flow["id"],
                                           execute=False)
    with server.runtime.db.session() as session:  # (as if it had ended with an error)
        session.execute(update(Run).where(Run.id == first.id).values(
            status="completed_with_errors", finished_at=utcnow()))
        session.execute(update(Flow).where(Flow.id == flow["id"]).values(active_run_id=None))
    error_id = add_open_error(server, first.id)

    response = server.api.post(f"/api/v1/flows/{flow['id']}/errors/retry",
                               json={"error_ids": [error_id]})

    assert response.status_code == 202, response.text
    retry_id = response.json()["id"]
    assert [job["status"] for job in jobs_of(server, retry_id)] == ["todo"]


def add_open_error(server: Server, run_id: str) -> str:
    from segbridge.storage.models import RecordErrorRow

    with server.runtime.db.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        error = RecordErrorRow(
            id="err_transaction_test", account_id=run.account_id, flow_id=run.flow_id,
            run_id=run.id, import_name="Orders", position=0, ref="1", step="import",
            field=None, reason="Segment answered 503", http_status=503, retriable=True,
            data={"order_id": "1", "customer_id": "c1"}, raw='{"order_id": "1"}')
        session.add(error)
    return "err_transaction_test"


def test_a_run_resumed_after_a_crash_is_executed_by_a_worker_at_once(
    server: Server, receiver: Receiver, shop: dict[str, Any], data: Path,
    workers: WorkerProcesses,
) -> None:
    flow = a_flow(server, receiver, data)
    crashed = server.runtime.flows.start_run(cli_principal(server.runtime), flow["id"],
                                             execute=False)
    with server.runtime.db.session() as session:
        session.execute(update(Run).where(Run.id == crashed.id).values(
            status="failed", message="crashed: lane 0 ended unexpectedly", finished_at=utcnow()))
        session.execute(update(Flow).where(Flow.id == flow["id"]).values(active_run_id=None))
    worker = workers.start()
    workers.wait_ready(worker)

    resumed = server.api.post(f"/api/v1/runs/{crashed.id}/resume")
    assert resumed.status_code == 202, resumed.text
    run = wait_for_run(server, crashed.id, timeout=2 * LEASE)  # (not after a take-over)

    assert run["status"] == "succeeded", run
    assert run_row(server, crashed.id).owner == f"{socket.gethostname()}:{worker.pid}"
    delivered_once(receiver, 20)


def test_the_in_process_queue_hands_a_run_over_only_once_its_transaction_commits(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'queue.sqlite3'}")
    handed: list[str] = []
    queue = RunQueue()
    queue.attach(handed.append)
    try:
        with pytest.raises(RuntimeError), db.session() as session:
            session.execute(text("SELECT 1"))
            queue.enqueue_in(session, "run_rolled_back", None)
            raise RuntimeError("the caller fails")
        with db.session() as session:
            queue.enqueue_in(session, "run_a", None)
            queue.enqueue_in(session, "run_b", None)
            assert handed == []  # not before the commit
            session.commit()
            assert handed == ["run_a", "run_b"]
            session.execute(text("SELECT 1"))  # a later transaction of the same session
            queue.enqueue_in(session, "run_c", None)
    finally:
        db.dispose()

    assert handed == ["run_a", "run_b", "run_c"]  # each once; the rolled back one never

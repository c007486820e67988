"""Runs on ``segbridge worker`` processes through the job queue (procrastinate on PostgreSQL):
executed once, spread over workers, taken over from a killed worker from its checkpoint with
the same messageIds, given back on SIGTERM; a schedule fires once across workers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from segbridge.core.clock import utcnow
from segbridge.storage.models import Flow, Run
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
from tests.integration.flows.test_faults import delivered_once
from tests.integration.flows.test_flow_runs import create_flow
from tests.integration.scaleout.queue.conftest import LEASE, Workers

pytestmark = pytest.mark.postgres
SLOW_ROWS = 20_000


def start_run(server: Server, flow_id: str) -> str:
    response = server.api.post(f"/api/v1/flows/{flow_id}/runs")
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def run_row(server: Server, run_id: str) -> Run:
    with server.runtime.db.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run


def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


def pid_of(owner: str | None) -> int | None:
    host, _, pid = (owner or "").rpartition(":")
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


class Watch:
    """Every (status, owner's pid) a run goes through, read every 20 ms in a thread of its own
    (consecutive repeats once)."""

    def __init__(self, server: Server, run_id: str) -> None:
        self.server = server
        self.run_id = run_id
        self.seen: list[tuple[str, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        query = text("SELECT status, owner FROM runs WHERE id = :run")
        with self.server.runtime.db.engine.connect() as connection:
            while not self._stop.wait(0.02):
                status, owner = connection.execute(query, {"run": self.run_id}).one()
                connection.rollback()  # (a fresh snapshot at each read)
                state = (str(status), pid_of(owner))
                if not self.seen or self.seen[-1] != state:
                    self.seen.append(state)

    def ownerless(self) -> list[tuple[str, int | None]]:
        """The states where the run was running or paused with no owner: none, since a run
        given back (its lease released, its job waiting again) is queued."""
        return [(status, owner) for status, owner in self.seen
                if owner is None and status in ("running", "paused")]


def slow_run(server: Server, receiver: Receiver, data: Path) -> tuple[dict[str, Any], str]:
    """A run of SLOW_ROWS records to a slow receiver, once it has a checkpoint on a worker."""
    connection = segment_connection(server, receiver, concurrency_level=1)
    flow = create_flow(server, track_flow(
        "Orders", write_csv(data / "o.csv", orders(SLOW_ROWS)), connection["name"]))
    receiver.faults(latency_ms=150)
    run_id = start_run(server, flow["id"])
    until(lambda: run_row(server, run_id).checkpoint > 0, 30, "a first checkpoint")
    return flow, run_id


def test_a_run_started_through_the_api_is_executed_by_a_worker(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    connection = segment_connection(server, receiver)
    flow = create_flow(server, track_flow("Orders", write_csv(data / "o.csv", orders(50)),
                                          connection["name"]))
    run_id = start_run(server, flow["id"])  # enqueued: nobody executes it yet
    time.sleep(0.5)
    assert run_row(server, run_id).status == "queued"

    worker = workers.start("--concurrency", "2")
    run = wait_for_run(server, run_id, timeout=45)

    assert run["status"] == "succeeded", run
    assert run_row(server, run_id).owner == f"{socket.gethostname()}:{worker.pid}"
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, 50)


def test_two_workers_and_several_flows_deliver_every_record_once(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    connection = segment_connection(server, receiver)
    flows = [create_flow(server, track_flow(f"Orders {i}", write_csv(
        data / f"{i}.csv", orders(300, start=i * 1000)), connection["name"]))
        for i in range(8)]
    pair = [workers.start("--concurrency", "2") for _ in range(2)]
    for worker in pair:
        workers.wait_ready(worker)
    receiver.faults(latency_ms=30)
    run_ids = [start_run(server, flow["id"]) for flow in flows]

    runs = [wait_for_run(server, run_id, timeout=45) for run_id in run_ids]

    assert [run["status"] for run in runs] == ["succeeded"] * len(runs)
    delivered_once(receiver, 8 * 300)
    owners = {pid_of(run_row(server, run_id).owner) for run_id in run_ids}
    assert owners == {worker.pid for worker in pair}  # both workers executed runs


def test_a_killed_worker_s_run_is_finished_by_another_from_its_checkpoint(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    pair = [workers.start("--concurrency", "1") for _ in range(2)]
    for worker in pair:
        workers.wait_ready(worker)
    flow, run_id = slow_run(server, receiver, data)
    [victim] = [w for w in pair if w.pid == pid_of(run_row(server, run_id).owner)]
    [survivor] = [w for w in pair if w is not victim]

    with Watch(server, run_id) as watch:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed_at = time.monotonic()
        until(lambda: pid_of(run_row(server, run_id).owner) == survivor.pid, 4 * LEASE,
              "taken over by the other worker")
        taken_after = time.monotonic() - killed_at
    receiver.no_faults()
    run = wait_for_run(server, run_id, timeout=45)

    # a dead owner on this host: seen at the next take-over tick (1 s), then picked up at once
    # (measured: 1-2 s; the bound leaves room for a loaded machine)
    assert taken_after < 2 * LEASE, f"taken over {taken_after:.1f} s after the kill"
    assert run["status"] == "succeeded", run
    assert f"taken over from {socket.gethostname()}:{victim.pid}" in run["message"]
    assert watch.ownerless() == [], watch.seen
    assert run["counts"]["exported"] == run["counts"]["sent"] == SLOW_ROWS
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, SLOW_ROWS)  # same messageIds: the re-sent chunk counted once


def test_sigterm_gives_the_run_back_and_another_worker_finishes_it(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    pair = [workers.start("--concurrency", "1") for _ in range(2)]
    for worker in pair:
        workers.wait_ready(worker)
    flow, run_id = slow_run(server, receiver, data)
    [leaving] = [w for w in pair if w.pid == pid_of(run_row(server, run_id).owner)]
    [staying] = [w for w in pair if w is not leaving]

    with Watch(server, run_id) as watch:
        leaving.send_signal(signal.SIGTERM)
        asked_at = time.monotonic()
        leaving.wait(timeout=4 * LEASE)
        stopped_after = time.monotonic() - asked_at
        until(lambda: pid_of(run_row(server, run_id).owner) == staying.pid, 2 * LEASE,
              "resumed by the other worker")
    receiver.no_faults()
    run = wait_for_run(server, run_id, timeout=45)

    assert leaving.returncode == 0, workers.output(leaving)
    assert f"run {run_id} given back" in workers.output(leaving)
    assert stopped_after < 2 * LEASE, f"stopped {stopped_after:.1f} s after SIGTERM"
    assert watch.ownerless() == [], watch.seen  # queued while its job waited
    assert run["status"] == "succeeded", run
    assert run["counts"]["exported"] == run["counts"]["sent"] == SLOW_ROWS
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, SLOW_ROWS)


def test_a_run_given_back_by_the_only_worker_waits_queued_until_the_next_worker_starts_it(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    first = workers.start("--concurrency", "1")
    workers.wait_ready(first)
    flow, run_id = slow_run(server, receiver, data)

    first.send_signal(signal.SIGTERM)
    first.wait(timeout=4 * LEASE)

    waiting = assert_waits_in_the_queue(server, run_id)
    receiver.no_faults()
    second = workers.start("--concurrency", "1")
    run = wait_for_run(server, run_id, timeout=45)

    assert run["status"] == "succeeded", run
    assert run_row(server, run_id).owner == f"{socket.gethostname()}:{second.pid}"
    assert 0 < waiting["checkpoint"] < SLOW_ROWS  # resumed from there, not from the start
    assert run["counts"]["exported"] == run["counts"]["sent"] == SLOW_ROWS
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, SLOW_ROWS)


def test_a_killed_worker_s_run_taken_over_waits_queued_until_a_worker_starts_it(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    victim = workers.start("--concurrency", "1")
    ticks_only = workers.start("--queues", "no-runs")  # takes over, executes no run
    workers.wait_ready(victim)
    until(lambda: "Starting worker on queues no-runs" in workers.output(ticks_only), 30,
          "the take-over worker up")
    flow, run_id = slow_run(server, receiver, data)

    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    until(lambda: run_row(server, run_id).status == "queued", 4 * LEASE, "taken over")

    waiting = assert_waits_in_the_queue(server, run_id)
    assert f"taken over from {socket.gethostname()}:{victim.pid}" in waiting["message"]
    receiver.no_faults()
    finisher = workers.start("--concurrency", "1")
    run = wait_for_run(server, run_id, timeout=45)

    assert run["status"] == "succeeded", run
    assert run_row(server, run_id).owner == f"{socket.gethostname()}:{finisher.pid}"
    assert run["counts"]["exported"] == run["counts"]["sent"] == SLOW_ROWS
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, SLOW_ROWS)


def test_a_dead_worker_s_job_of_a_run_that_ended_does_not_hold_the_flow_for_ever(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    worker = workers.start("--concurrency", "1")
    workers.wait_ready(worker)
    connection = segment_connection(server, receiver)
    flow = create_flow(server, track_flow(
        "Orders", write_csv(data / "o.csv", orders(5)), connection["name"]))
    ended = wait_for_run(server, start_run(server, flow["id"]), timeout=45)
    assert ended["status"] == "succeeded", ended
    until(lambda: not flow_lock_held(server, flow["id"]), 30,  # (its job ends just after)
          "the ended run's job finished")
    with server.runtime.db.engine.begin() as db:  # as left by a worker killed after the run
        # ended and before its job did: the job still executed, holding the flow's lock
        gone = db.execute(text(
            "INSERT INTO procrastinate_workers (last_heartbeat) "
            "VALUES (NOW() - INTERVAL '1 hour') RETURNING id")).scalar_one()
        db.execute(text(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, status, "
            "worker_id) VALUES ('runs', 'segbridge.execute_run', :lock, "
            "CAST(:args AS jsonb), 'doing', :worker)"),
            {"lock": f"flow:{flow['id']}", "args": f'{{"run_id": "{ended["id"]}"}}',
             "worker": gone})

    following = wait_for_run(server, start_run(server, flow["id"]), timeout=4 * LEASE + 30)

    assert following["status"] == "succeeded", following
    assert "ending job" in workers.output(worker)


def flow_lock_held(server: Server, flow_id: str) -> bool:
    """A job being executed holds the flow's lock."""
    with server.runtime.db.engine.connect() as connection:
        return bool(connection.execute(text(
            "SELECT 1 FROM procrastinate_jobs WHERE lock = :lock AND status = 'doing'"),
            {"lock": f"flow:{flow_id}"}).first())


def assert_waits_in_the_queue(server: Server, run_id: str) -> dict[str, Any]:
    """The run given back, while no worker executes runs: queued (as the API and the pages
    show it), owned by nobody, its job waiting; it stays so."""
    time.sleep(1)  # (nothing moves it meanwhile)
    waiting: dict[str, Any] = server.api.get(f"/api/v1/runs/{run_id}").json()
    assert waiting["status"] == "queued", waiting
    assert run_row(server, run_id).owner is None
    with server.runtime.db.engine.connect() as connection:
        jobs = connection.execute(text(
            "SELECT status::text FROM procrastinate_jobs WHERE args->>'run_id' = :run "
            "AND status IN ('todo', 'doing')"), {"run": run_id}).scalars().all()
    assert jobs == ["todo"]
    return waiting


def test_a_schedule_fires_once_with_two_workers(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    connection = segment_connection(server, receiver)
    doc = track_flow("Orders", write_csv(data / "o.csv", orders(20)), connection["name"])
    flow = create_flow(server, {**doc, "schedule": {"cron": "0 3 * * *", "timezone": "UTC"}})
    pair = [workers.start("--concurrency", "2") for _ in range(2)]
    for worker in pair:
        workers.wait_ready(worker)
    with server.runtime.db.session() as session:  # its time has come
        session.execute(update(Flow).where(Flow.id == flow["id"])
                        .values(next_run_at=utcnow() - timedelta(seconds=1)))

    def runs_of_flow() -> int:
        with server.runtime.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(Run)
                                      .where(Run.flow_id == flow["id"])) or 0)

    until(runs_of_flow, 20, "the scheduled run")  # (a schedule tick every 15 s)
    time.sleep(16)  # the next tick of each worker: nothing more is due
    assert runs_of_flow() == 1
    [run] = server.api.get(f"/api/v1/flows/{flow['id']}/runs").json()
    assert run["trigger"] == "schedule"
    assert wait_for_run(server, run["id"], timeout=30)["status"] == "succeeded"
    delivered_once(receiver, 20)


def test_a_frozen_worker_s_run_is_taken_over_and_the_worker_back_writes_nothing(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    pair = [workers.start("--concurrency", "1") for _ in range(2)]
    for worker in pair:
        workers.wait_ready(worker)
    flow, run_id = slow_run(server, receiver, data)
    [frozen] = [w for w in pair if w.pid == pid_of(run_row(server, run_id).owner)]
    [other] = [w for w in pair if w is not frozen]

    frozen.send_signal(signal.SIGSTOP)  # alive, but silent: no heartbeat any more
    stopped_at = time.monotonic()
    try:
        until(lambda: pid_of(run_row(server, run_id).owner) == other.pid, 6 * LEASE,
              "taken over by the other worker")
        taken_after = time.monotonic() - stopped_at
    finally:
        frozen.send_signal(signal.SIGCONT)  # back: its next write finds the lease gone
    receiver.no_faults()
    run = wait_for_run(server, run_id, timeout=45)

    # two leases without a heartbeat, then the next take-over tick; the silence counts from
    # the last heartbeat, which came up to a lease before the stop (a loaded machine: 9.8 s)
    assert LEASE <= taken_after < 4 * LEASE, f"taken over after {taken_after:.1f} s"
    assert run["status"] == "succeeded", run
    assert "(no heartbeat for" in run["message"]
    assert run["counts"]["exported"] == run["counts"]["sent"] == SLOW_ROWS  # counted once
    assert_invariant(server, flow["id"], run)
    delivered_once(receiver, SLOW_ROWS)
    assert frozen.poll() is None  # it goes on working the queue
    assert "was taken over by another process; stopping here" in workers.output(frozen)


def test_the_cli_runs_a_flow_through_the_queue_and_waits_for_it(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    """With PostgreSQL `segbridge flows run` enqueues, a worker executes, the CLI waits and
    prints the run's end; `--here` executes in the terminal, as with SQLite."""
    connection = segment_connection(server, receiver)
    flow = create_flow(server, track_flow("Orders", write_csv(data / "o.csv", orders(40)),
                                          connection["name"]))
    worker = workers.start()
    workers.wait_ready(worker)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "segbridge.cli", *args], env=workers.env,
                              capture_output=True, text=True, timeout=90)

    queued = cli("flows", "run", "Orders", "--follow")
    assert queued.returncode == 0, queued.stderr
    assert "in the job queue: a worker executes it" in queued.stderr
    assert ": succeeded" in queued.stdout
    first = server.api.get(f"/api/v1/flows/{flow['id']}/runs").json()[0]
    assert run_row(server, first["id"]).owner == f"{socket.gethostname()}:{worker.pid}"

    here = cli("flows", "run", "Orders", "--here", "--fresh-ids")
    assert here.returncode == 0, here.stderr
    assert "in the job queue" not in here.stderr and ": succeeded" in here.stdout
    latest = server.api.get(f"/api/v1/flows/{flow['id']}/runs").json()[0]
    assert run_row(server, latest["id"]).owner != f"{socket.gethostname()}:{worker.pid}"
    assert len(receiver.archived()) == 80  # each run sent the 40 orders (new messageIds)


def test_a_worker_answers_health_and_metrics_on_its_port(workers: Workers) -> None:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    worker = workers.start("--metrics-port", str(port))
    workers.wait_ready(worker)
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    assert httpx.get(f"{base}/readyz", timeout=10).json()["checks"]["queue"] == "ok"
    metrics = httpx.get(f"{base}/metrics", timeout=10)
    assert metrics.status_code == 200 and "segbridge_queue_workers" in metrics.text

"""One big run through a real `segbridge worker` against the same run executed in-process
(issue 15: "events/s of one big run with 1 worker vs in-process"; the overhead goal: with
one worker, within 10% of today's in-process run).

    .venv/bin/python bench/worker_bench.py --rows 300000 --rounds 2
    .venv/bin/python bench/worker_bench.py --diagnose          # also (d) and (e) below
    .venv/bin/python bench/worker_bench.py --modes here,worker,worker-frozen --rounds 4

The flow of bench/flows_bench.py (a CSV of --rows orders -> track calls -> the counting
receiver on loopback), on a fresh home and, for PostgreSQL, a fresh database each time, run
three ways in one bench run:

  (a) sqlite   in-process with SQLite, as `segbridge flows run` executes it today
               (execute_here; the machine's governor: file locks)
  (b) here     in-process against PostgreSQL, the cluster governor (`flows run --here`)
  (c) worker   one `segbridge worker` process (started and idle before) takes the run's job
               from the PostgreSQL queue; the run is started by the flows service as the CLI
               and the API start it (its job deferred once the run row is committed)
and, with --diagnose, where a difference comes from:
  (d) here-host      in-process against PostgreSQL with the file-lock governor: the
                     database's share, without the cluster governor's
  (e) worker-frozen  (c), but the worker's start-up objects frozen out of the garbage
                     collector's reach (gc.freeze) before it works, as `flows run` and `serve`
                     do and `segbridge worker` does not

events/s = events the receiver counted / seconds. In-process: the seconds of execute_here.
Worker: from just before the run is started (enqueued) to the run's finished_at, so the
queue's pick-up is included ("the run itself": started_at to finished_at). CPU seconds per
million events: of the executing process and its children (lanes): in-process, this child's
own rusage around execute_here; the worker, its process tree's CPU (/proc) before and after
the run (its idle ticks included; "idle" shows them alone). PostgreSQL's own CPU is in
neither. The order of the ways rotates each round; each way's fastest round (events/s) and
leanest round (CPU) count, so a neighbour's load on the shared machine does not decide the
ratios; on a busy machine, CPU per event is the steadier of the two.
Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), as the tests do.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import flows_bench
from governor_bench import drop_database, new_database

MODES = ("sqlite", "here", "worker")
DIAGNOSTIC_MODES = ("here-host", "worker-frozen")
LABELS = {"sqlite": "(a) in-process, SQLite", "here": "(b) in-process, PostgreSQL --here",
          "worker": "(c) 1 segbridge worker",
          "here-host": "(d) in-process, PostgreSQL, file locks",
          "worker-frozen": "(e) 1 worker, gc.freeze at start"}
# (e): the worker as `segbridge worker` starts it, but freezing its start-up objects out of the
# garbage collector's reach before it works, as `segbridge flows run` and `serve` do
FROZEN_WORKER = """
import sys
from segbridge.core.gc_tuning import freeze_long_lived_objects
from segbridge.queueing import worker
original = worker.QueueWorker.run
async def run(self, *, signals=True):
    freeze_long_lived_objects()
    await original(self, signals=signals)
worker.QueueWorker.run = run
from segbridge.cli.main import main
sys.argv = ["segbridge", "worker"]
main()
"""
WORKER_READY = "Starting worker on queues runs"
TICK = os.sysconf("SC_CLK_TCK")


# -- the child: one run, one way ------------------------------------------------------------
def settings_env(home: Path, database: str | None, csv_path: Path) -> dict[str, str]:
    """The settings of the child and of its worker, as environment variables (the same for
    every way; only the database differs)."""
    env = {"SEGBRIDGE_HOME": str(home), "SEGBRIDGE_FILE_ROOTS": str(csv_path.parent),
           "SEGBRIDGE_HTTP_TIMEOUT_SECONDS": "60"}
    if database:
        env["SEGBRIDGE_DATABASE_URL"] = database
    return env


def create_flow(runtime: Any, receiver: str, csv_path: Path) -> tuple[Any, str]:
    """The bench's connection, integration and flow (bench/flows_bench.py's); the principal
    and the flow id."""
    from segbridge.accounts.service import principal_for
    from segbridge.connections.model import ConnectionDraft
    from segbridge.storage.models import User

    with runtime.db.session() as session:
        principal = principal_for(session.query(User).one(), via="cli")
    runtime.connections.create(principal, ConnectionDraft(
        name="Bench", application="segment",
        settings={"write_key": "benchbenchbenchbenchbenchbench12", "endpoint": receiver}))
    runtime.integrations.create(principal, "Bench")
    flow = runtime.flows.create(principal, {
        "name": "Bench", "integration": "Bench",
        "export": {"type": "csv", "path": str(csv_path)},
        "imports": [{"name": "Track", "connection": "Bench", "call": "track", "mapping": {
            "userId": "user_id", "event": {"constant": "Order Completed"},
            "timestamp": {"field": "created_at"},
            "properties": {"fields": {name: name for name in flows_bench.PROPERTIES}}}}]})
    return principal, flow.id


def run_here(runtime: Any, principal: Any, flow_id: str) -> dict[str, Any]:
    """As `segbridge flows run` (--here) executes a run: in this process."""
    from segbridge.core.gc_tuning import freeze_long_lived_objects
    from segbridge.runs import execute_here

    run = runtime.flows.start_run(principal, flow_id, execute=False)
    freeze_long_lived_objects()
    cpu, started = flows_bench.cpu_seconds(), time.perf_counter()
    result = execute_here(runtime, run.id)
    seconds, cpu = time.perf_counter() - started, flows_bench.cpu_seconds() - cpu
    return {"status": result.status, "message": result.message, "seconds": seconds, "cpu": cpu}


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of a process, of its children that ended, and of its live descendants."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(value) for value in fields[11:15]) / TICK  # utime stime cutime cstime
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        total += sum(process_tree_cpu(int(child)) for child in children)
    return total


def start_worker(env: dict[str, str], log_path: Path, frozen: bool) -> subprocess.Popen[bytes]:
    command = ["-c", FROZEN_WORKER] if frozen else ["-m", "segbridge.cli", "worker"]
    with log_path.open("wb") as log:
        worker = subprocess.Popen([sys.executable, *command],
                                  env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                                  stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while WORKER_READY not in log_path.read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    time.sleep(1)  # its first periodic ticks (take-over, schedule) pass before the run
    return worker


def idle_cpu_per_second(worker: subprocess.Popen[bytes], seconds: float = 4.0) -> float:
    """The worker's CPU while it waits for jobs (polling, heartbeats, periodic ticks)."""
    cpu = process_tree_cpu(worker.pid)
    time.sleep(seconds)
    return (process_tree_cpu(worker.pid) - cpu) / seconds


def run_on_worker(runtime: Any, principal: Any, flow_id: str, env: dict[str, str],
                  frozen: bool) -> dict[str, Any]:
    """Start the run as the CLI and the API do (its job enqueued); one idle worker takes it."""
    from segbridge.runs.lifecycle import FINISHED

    log_path = Path(env["SEGBRIDGE_HOME"]) / "worker.log"
    worker = start_worker(env, log_path, frozen)
    try:
        idle = idle_cpu_per_second(worker)
        cpu, enqueued = process_tree_cpu(worker.pid), datetime.now(UTC)
        run = runtime.flows.start_run(principal, flow_id)
        while (done := runtime.flows.get_run(principal, run.id)).status not in FINISHED:
            time.sleep(0.1)
        cpu = process_tree_cpu(worker.pid) - cpu
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=120)
    assert done.finished_at is not None and done.started_at is not None, done
    started, finished = (datetime.fromisoformat(done.started_at),
                         datetime.fromisoformat(done.finished_at))
    return {"status": done.status, "message": done.message, "cpu": cpu, "idle_cpu_per_s": idle,
            "seconds": (finished - enqueued).total_seconds(),
            "run_seconds": (finished - started).total_seconds()}


def use_file_lock_governor() -> None:
    """(d): PostgreSQL's share of (b), without the cluster governor's (the machine's governor,
    file locks, as with SQLite)."""
    import segbridge.runs.executor as executor
    from segbridge.concurrency.host import HostGovernor

    def file_locks(settings: Any, db: Any, clock: Any = None) -> HostGovernor:
        return HostGovernor(settings.home / "slots")

    setattr(executor, "governor_for", file_locks)  # noqa: B010  (its module-level name)


def child(mode: str, receiver: str, csv_path: Path, home: Path, database: str | None) -> None:
    env = settings_env(home, database, csv_path)
    os.environ.update(env)
    from segbridge.core.settings import load_settings
    from segbridge.runtime import build_runtime, first_start

    runtime = build_runtime(load_settings())
    first_start(runtime)
    principal, flow_id = create_flow(runtime, receiver, csv_path)
    if mode.startswith("worker"):
        result = run_on_worker(runtime, principal, flow_id, env, mode == "worker-frozen")
    else:
        if mode == "here-host":
            use_file_lock_governor()
        result = run_here(runtime, principal, flow_id)
    runtime.close()
    print(json.dumps(result))


# -- the bench ------------------------------------------------------------------------------
@dataclass
class Measured:
    mode: str
    events: int
    seconds: float
    cpu: float
    run_seconds: float | None = None
    idle_cpu_per_s: float | None = None

    @property
    def per_s(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_per_million(self) -> float:
        return self.cpu / self.events * 1_000_000


def measure(mode: str, receiver: str, csv_path: Path, rows: int) -> Measured:
    home = Path(tempfile.mkdtemp(prefix=f"worker-bench-{mode}-"))
    database = new_database() if mode != "sqlite" else None
    try:
        before = flows_bench.received(receiver)
        output = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--url", receiver, "--csv",
             str(csv_path), "--home", str(home), "--database", database or ""],
            check=True, capture_output=True, text=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        events = flows_bench.received(receiver) - before
    finally:
        if database:
            drop_database(database)
    if result["status"] != "succeeded" or events != rows:
        raise RuntimeError(f"{mode}: the run ended {result['status']} ({result['message']}) "
                           f"with {events:,} of {rows:,} events received; see {home}")
    shutil.rmtree(home, ignore_errors=True)
    return Measured(mode, events, result["seconds"], result["cpu"], result.get("run_seconds"),
                    result.get("idle_cpu_per_s"))


def show(measured: Measured) -> str:
    line = (f"{LABELS[measured.mode]:40} {measured.per_s:9,.0f} events/s  "
            f"({measured.seconds:.2f} s, {measured.cpu_per_million:5.1f} CPU s per million)")
    if measured.run_seconds is not None:
        line += f"; the run itself {measured.events / measured.run_seconds:,.0f} events/s"
    if measured.idle_cpu_per_s is not None:
        line += f"; idle {measured.idle_cpu_per_s * 1000:.0f} ms CPU/s"
    return line


def bench(rows: int, rounds: int, modes: tuple[str, ...]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="worker-bench-"))
    csv_path = folder / "orders.csv"
    flows_bench.write_rows(csv_path, rows)
    process, receiver = flows_bench.start_receiver()
    best: dict[str, Measured] = {}  # the fastest round of each way
    leanest: dict[str, float] = {}  # the fewest CPU seconds per million events of each way
    try:
        for round_ in range(rounds):
            shift = round_ % len(modes)
            order = modes[shift:] + modes[:shift]
            print(f"round {round_ + 1} of {rounds} ({rows:,} rows, track calls):", flush=True)
            for mode in order:
                measured = measure(mode, receiver, csv_path, rows)
                print(f"  {show(measured)}", flush=True)
                if mode not in best or measured.per_s > best[mode].per_s:
                    best[mode] = measured
                leanest[mode] = min(leanest.get(mode, measured.cpu_per_million),
                                    measured.cpu_per_million)
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)
    print("best of each (events/s: its fastest round; CPU: its leanest round):")
    for mode in modes:
        print(f"  {show(best[mode])}; leanest {leanest[mode]:.1f} CPU s per million")
    if {"sqlite", "here", "worker"} <= set(best):
        print(f"  events/s  (c)/(a) = {best['worker'].per_s / best['sqlite'].per_s:.2f}   "
              f"(c)/(b) = {best['worker'].per_s / best['here'].per_s:.2f}   (goal: >= 0.90)")
        print(f"  CPU per event (c)/(a) = {leanest['worker'] / leanest['sqlite']:.2f}   "
              f"(c)/(b) = {leanest['worker'] / leanest['here']:.2f}   (goal: <= 1.10; on a "
              "shared machine the steadier measure)")
    base = modes[0]
    print(f"  against {LABELS[base][:3]}, events/s and CPU per event: "
          + "   ".join(f"{LABELS[mode][:3]} {best[mode].per_s / best[base].per_s:.2f} "
                       f"{leanest[mode] / leanest[base]:.2f}" for mode in modes[1:]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--diagnose", action="store_true",
                        help="also (d) PostgreSQL in-process with the file-lock governor and "
                             "(e) a worker with its start-up objects frozen")
    parser.add_argument("--modes", help="a comma-separated choice of sqlite, here, worker, "
                        "here-host, worker-frozen (default: the first three)")
    parser.add_argument("--child", choices=MODES + DIAGNOSTIC_MODES)
    parser.add_argument("--url")
    parser.add_argument("--csv")
    parser.add_argument("--home")
    parser.add_argument("--database")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, Path(args.csv), Path(args.home), args.database or None)
        return
    modes = MODES + DIAGNOSTIC_MODES if args.diagnose else MODES
    if args.modes:
        modes = tuple(mode.strip() for mode in args.modes.split(","))
        unknown = set(modes) - set(MODES + DIAGNOSTIC_MODES)
        if unknown:
            parser.error(f"unknown modes {sorted(unknown)}: choose among "
                         f"{', '.join(MODES + DIAGNOSTIC_MODES)}")
    bench(args.rows, args.rounds, modes)


if __name__ == "__main__":
    main()

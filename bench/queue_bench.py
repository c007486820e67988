"""runs/s of the job queue for 100 one-record flows, with N `segbridge worker` processes.

Usage (from /work/main): .venv/bin/python bench/queue_bench.py 1   (then 2, 3)
A fresh PostgreSQL database, a local Segment receiver on loopback (the tests' simulated one),
100 flows of one record each, all 100 runs enqueued through the API before the workers start;
runs/s = 100 / (last run's finished_at - first run's started_at), from the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.getcwd())

import httpx
from sqlalchemy import func, select

from segbridge.assembly import create_app
from segbridge.core.clock import SYSTEM_CLOCK
from segbridge.core.settings import load_settings
from segbridge.runtime import build_runtime, first_start
from segbridge.storage.models import Run
from tests.integration.conftest import admin_token
from tests.integration.flows.conftest import orders, simulated_receiver, track_flow, write_csv
from tests.support.databases import postgres_database
from tests.support.servers import serve_in_thread

FLOWS = 100
WARM = os.environ.get("BENCH_COLD") is None


def main(workers: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="engine-bench-"))
    data = folder / "data"
    data.mkdir()
    with postgres_database() as url, simulated_receiver(folder, SYSTEM_CLOCK) as receiver:
        settings = load_settings(home=folder / "home", database_url=url, file_roots=str(data))
        runtime = build_runtime(settings)
        app = create_app(runtime)
        first_start(runtime)
        token = admin_token(runtime)
        with serve_in_thread(app) as base, httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                trust_env=False) as api:
            source = receiver.create_source("bench")
            assert api.post("/api/v1/connections", json={
                "name": "Segment", "application": "segment",
                "settings": {"write_key": source["write_key"],
                             "endpoint": receiver.url}}).status_code == 201
            assert api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
            flow_ids = [api.post("/api/v1/flows", json=track_flow(
                f"F{i}", write_csv(data / f"{i}.csv", orders(1, start=i)), "Segment"))
                .json()["id"] for i in range(FLOWS)]
            measure(runtime, api, settings, url, data, flow_ids, workers)
        app.state.local_segment.close()
        runtime.close()


def measure(runtime, api, settings, url, data, flow_ids, workers) -> None:
    if not WARM:
        for flow_id in flow_ids:  # all 100 wait in the queue before any worker starts
            assert api.post(f"/api/v1/flows/{flow_id}/runs").status_code == 202
    env = {**os.environ, "SEGBRIDGE_HOME": str(settings.home),
           "SEGBRIDGE_DATABASE_URL": url, "SEGBRIDGE_FILE_ROOTS": str(data),
           "SEGBRIDGE_LOG_LEVEL": "WARNING"}
    procs = [subprocess.Popen([sys.executable, "-m", "segbridge.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(workers)]
    if WARM:  # the workers are up and idle; the runs are enqueued by 8 API clients at once
        time.sleep(12)
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(
                lambda flow_id: api.post(f"/api/v1/flows/{flow_id}/runs").status_code,
                flow_ids))
        assert set(codes) == {202}, codes
    else:  # (cold: all 100 enqueued before; the workers' start-up overlaps)
        pass
    while True:
        with runtime.db.session() as session:
            left = session.scalar(select(func.count()).select_from(Run).where(
                Run.status.in_(("queued", "running"))))
        if not left:
            break
        time.sleep(0.1)
    with runtime.db.session() as session:  # from the first run's start to the last one's end
        first, last = session.execute(select(func.min(Run.started_at),
                                             func.max(Run.finished_at))).one()
        statuses = set(session.scalars(select(Run.status)))
    took = (last - first).total_seconds()
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    print(f"{'warm' if WARM else 'cold'}: {workers} worker(s) x 4 slots: {FLOWS} runs in "
          f"{took:.2f} s = {FLOWS / took:.1f} runs/s ({statuses})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)

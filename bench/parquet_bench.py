"""Benchmark: a flow over N rows in a Parquet file against the same flow over the same rows as
CSV, one after the other on the same machine and receiver (bench/counting_receiver.py), each
run in its own process. Target (issue 14): the Parquet flow at no less than the CSV flow's
events/s.

    python bench/parquet_bench.py                  # 1M rows, lanes as `segbridge flows run`
    python bench/parquet_bench.py --rows 200000 --no-lanes
    python bench/parquet_bench.py --typed          # a timestamp with zone and a decimal

A large CSV file's run has lanes (one process per core maps its share, see runs/lanes.py); a
single Parquet file's run has them when its rows' decoded size passes the same bound (the
lane source's ``read_bytes``: on disk it is compressed), and each batch is converted column by
column. ``--no-lanes`` compares the two with one producer each. Also reported: each run's
peak memory (VmHWM) and the CPU seconds of its processes (run and lanes), steadier than
events/s on a machine that other work shares.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from flows_bench import peak_rss_mb, received, start_receiver  # noqa: E402 - not a package

PROPERTIES = ("order_id", "total", "currency", "sku", "quantity")
ROW_GROUP_ROWS = 128 * 1024


def row(i: int) -> list[Any]:
    return [f"user-{i % 50_000}", "2026-11-28T10:00:00Z", i, f"{i % 997}.50", "EUR",
            f"sku-{i % 311}", i % 7 + 1]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "created_at", *PROPERTIES])
        writer.writerows(row(i) for i in range(rows))


def write_parquet(path: Path, rows: int, typed: bool = False) -> None:
    """The same rows, typed as a warehouse writes them: integers as integers, and with
    ``typed`` the time as a timestamp with its zone and the total as a decimal (texts
    otherwise, as in the CSV file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["user_id", "created_at", *PROPERTIES]
    types = {"order_id": pa.int64(), "quantity": pa.int64()}
    if typed:
        types.update(created_at=pa.timestamp("us", tz="UTC"), total=pa.decimal128(12, 2))
    schema = pa.schema([(name, types.get(name, pa.string())) for name in names])
    with pq.ParquetWriter(path, schema) as writer:
        for first in range(0, rows, ROW_GROUP_ROWS):
            chunk = [row(i) for i in range(first, min(rows, first + ROW_GROUP_ROWS))]
            columns = {name: [values[n] for values in chunk] for n, name in enumerate(names)}
            if typed:
                columns["created_at"] = [datetime.fromisoformat(text) for text in
                                         columns["created_at"]]
                columns["total"] = [Decimal(text) for text in columns["total"]]
            writer.write_table(pa.table(columns, schema=schema))


def flow_document(kind: str, path: Path) -> dict[str, Any]:
    return {
        "name": "Bench", "integration": "Bench",
        "export": {"type": kind, "path": str(path)},
        "imports": [{"name": "Track", "connection": "Bench", "call": "track", "mapping": {
            "userId": "user_id", "event": {"constant": "Order Completed"},
            "timestamp": {"field": "created_at"},
            "properties": {"fields": {name: name for name in PROPERTIES}}}}]}


def run_flow(url: str, kind: str, path: Path, lanes: bool) -> dict[str, Any]:
    """In the child process: one run of the flow over ``path``."""
    from segbridge.accounts.service import principal_for
    from segbridge.connections.model import ConnectionDraft
    from segbridge.core.gc_tuning import freeze_long_lived_objects
    from segbridge.core.settings import load_settings
    from segbridge.runs.executor import run_in_foreground
    from segbridge.runs.lanes import LanePolicy, lane_policy
    from segbridge.runtime import build_runtime, first_start
    from segbridge.storage.models import User

    home = Path(tempfile.mkdtemp(prefix="segbridge-bench-"))
    settings = load_settings(home=home, http_timeout_seconds=60, file_roots=str(path.parent))
    runtime = build_runtime(settings)
    first_start(runtime)
    with runtime.db.session() as session:
        principal = principal_for(session.query(User).one(), via="cli")
    runtime.connections.create(principal, ConnectionDraft(
        name="Bench", application="segment",
        settings={"write_key": "benchbenchbenchbenchbenchbench12", "endpoint": url}))
    runtime.integrations.create(principal, "Bench")
    flow = runtime.flows.create(principal, flow_document(kind, path))
    run = runtime.flows.start_run(principal, flow.id, execute=False)
    freeze_long_lived_objects()
    started = time.perf_counter()
    result = run_in_foreground(runtime.db, runtime.vault, runtime.settings, run.id, timeout=60,
                               lanes=lane_policy(settings) if lanes else LanePolicy())
    seconds = time.perf_counter() - started
    assert result.status == "succeeded", result
    runtime.db.dispose()
    shutil.rmtree(home, ignore_errors=True)
    return {"sent": result.counts.totals["sent"], "seconds": seconds,
            "peak_mb": peak_rss_mb()}


def measure(url: str, kind: str, path: Path, lanes: bool) -> dict[str, Any]:
    before = received(url)
    command = [sys.executable, __file__, "--child", "--url", url, "--kind", kind,
               "--path", str(path)]
    if not lanes:
        command.append("--no-lanes")
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["cpu_s"] = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)
    result["received"] = received(url) - before
    result["events_per_s"] = result["received"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-lanes", action="store_true",
                        help="one producer for the CSV run too (no lane processes)")
    parser.add_argument("--typed", action="store_true",
                        help="the Parquet file's time a timestamp with zone, its total a decimal")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lanes = not args.no_lanes
    if args.child:
        print(json.dumps(run_flow(args.url, args.kind, Path(args.path), lanes)))
        return
    folder = Path(tempfile.mkdtemp(prefix="segbridge-parquet-bench-"))
    receiver, url = start_receiver()
    try:
        write_csv(folder / "orders.csv", args.rows)
        write_parquet(folder / "orders.parquet", args.rows, typed=args.typed)
        results = {kind: measure(url, kind, folder / f"orders.{kind}", lanes)
                   for kind in ("csv", "parquet")}
    finally:
        receiver.terminate()
        shutil.rmtree(folder, ignore_errors=True)
    for kind, result in results.items():
        print(f" {kind:>8}: {result['received']:,} of {args.rows:,} received, "
              f"{result['events_per_s']:,.0f} events/s, {result['cpu_s']:.1f} CPU s, "
              f"peak {result['peak_mb']:.0f} MB")
    ratio = results["parquet"]["events_per_s"] / results["csv"]["events_per_s"]
    verdict = "ok" if ratio >= 1.0 else "BELOW the target 1.0"
    print(f" parquet/csv: {ratio:.2f} ({verdict}; {'lanes as flows run' if lanes else 'no lanes'})")
    if ratio < 1.0:
        sys.exit(1)


if __name__ == "__main__":
    main()

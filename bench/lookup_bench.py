"""Benchmark: a CSV flow with a database lookup on 10,000 distinct keys against the same flow
without the lookup, one after the other on the same machine and receiver
(bench/counting_receiver.py), each run in its own process. Target (issue 13): the flow with
the lookup runs at no less than half the speed of the flow without it.

    python bench/lookup_bench.py                       # 1M rows, a SQLite customer table
    python bench/lookup_bench.py --rows 100000
    python bench/lookup_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

The lookup is batched (``where id in :customer`` with ``key_column: id``): the queries the
run made are counted and reported (about one per 500 new keys) when the run has no lanes; a
large file's run has lanes (as ``segbridge flows run`` decides), each asking for its own keys.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from flows_bench import received, start_receiver  # noqa: E402 - bench/ is not a package

PROPERTIES = ("order_id", "total", "currency", "sku", "quantity")
DISTINCT_KEYS = 10_000
TARGET_RATIO = 0.5


def write_rows(path: Path, rows: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "created_at", *PROPERTIES])
        for i in range(rows):
            writer.writerow([f"user-{i % DISTINCT_KEYS}", "2026-11-28T10:00:00Z", i,
                             f"{i % 997}.50", "EUR", f"sku-{i % 311}", i % 7 + 1])


def write_customers(url: str, table: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE {table} (id VARCHAR(20) PRIMARY KEY, "
                                "plan VARCHAR(20), country VARCHAR(2))"))
        connection.execute(text(f"INSERT INTO {table} VALUES (:id, :plan, :country)"),  # noqa: S608
                           [{"id": f"user-{i}", "plan": ("free", "pro", "team")[i % 3],
                             "country": ("FR", "DE", "US")[i % 3]}
                            for i in range(DISTINCT_KEYS)])
    engine.dispose()


def drop_customers(url: str, table: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def flow_document(csv_path: Path, table: str | None) -> dict[str, Any]:
    fields = {name: name for name in PROPERTIES}
    doc: dict[str, Any] = {
        "name": "Bench", "integration": "Bench",
        "export": {"type": "csv", "path": str(csv_path)},
        "imports": [{"name": "Track", "connection": "Bench", "call": "track", "mapping": {
            "userId": "user_id", "event": {"constant": "Order Completed"},
            "timestamp": {"field": "created_at"}, "properties": {"fields": fields}}}]}
    if table is not None:
        doc["steps"] = [{"lookup": {
            "name": "customer", "connection": "CRM",
            "query": f"select id, plan, country from {table} where id in :customer",  # noqa: S608
            "params": {"customer": "user_id"}, "key_column": "id",
            "cache": {"size": DISTINCT_KEYS, "ttl_seconds": 3600}}}]
        fields["plan"] = "customer.plan"
        fields["country"] = "customer.country"
    return doc


def run_flow(url: str, csv_path: Path, database_url: str | None, table: str | None
             ) -> dict[str, Any]:
    """In the child process: one run of the flow, with the lookup when ``table`` is given."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from segbridge.accounts.service import principal_for
    from segbridge.connections.model import ConnectionDraft
    from segbridge.core.gc_tuning import freeze_long_lived_objects
    from segbridge.core.settings import load_settings
    from segbridge.runs.executor import run_in_foreground
    from segbridge.runs.lanes import lane_policy
    from segbridge.runtime import build_runtime, first_start
    from segbridge.storage.models import User

    home = Path(tempfile.mkdtemp(prefix="segbridge-bench-"))
    settings = load_settings(home=home, http_timeout_seconds=60,
                             file_roots=str(csv_path.parent))
    runtime = build_runtime(settings)
    first_start(runtime)
    with runtime.db.session() as session:
        principal = principal_for(session.query(User).one(), via="cli")
    runtime.connections.create(principal, ConnectionDraft(
        name="Bench", application="segment",
        settings={"write_key": "benchbenchbenchbenchbenchbench12", "endpoint": url}))
    if table is not None:
        runtime.connections.create(principal, ConnectionDraft(
            name="CRM", application="database", settings={"url": database_url}))
    runtime.integrations.create(principal, "Bench")
    flow = runtime.flows.create(principal, flow_document(csv_path, table))
    run = runtime.flows.start_run(principal, flow.id, execute=False)
    queries: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if table is not None and table in statement:
            queries.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    freeze_long_lived_objects()
    started = time.perf_counter()
    result = run_in_foreground(runtime.db, runtime.vault, runtime.settings, run.id,
                               timeout=60, lanes=lane_policy(settings))
    seconds = time.perf_counter() - started
    assert result.status == "succeeded", result
    runtime.db.dispose()
    shutil.rmtree(home, ignore_errors=True)
    return {"sent": result.counts.totals["sent"], "seconds": seconds, "queries": len(queries)}


def measure(url: str, csv_path: Path, database_url: str, table: str | None) -> dict[str, Any]:
    before = received(url)
    command = [sys.executable, __file__, "--child", "--url", url, "--csv", str(csv_path),
               "--database-url", database_url]
    if table is not None:
        command += ["--table", table]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["received"] = received(url) - before
    result["events_per_s"] = result["received"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None,
                        help="where the customer table is made (default: a SQLite file)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--table", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_flow(args.url, Path(args.csv), args.database_url, args.table)))
        return
    folder = Path(tempfile.mkdtemp(prefix="segbridge-lookup-bench-"))
    database_url = args.database_url or f"sqlite:///{folder / 'crm.db'}"
    table = f"customers_{uuid.uuid4().hex[:8]}"
    receiver, url = start_receiver()
    try:
        csv_path = folder / "orders.csv"
        write_rows(csv_path, args.rows)
        write_customers(database_url, table)
        plain = measure(url, csv_path, database_url, None)
        looked_up = measure(url, csv_path, database_url, table)
    finally:
        receiver.terminate()
        if args.database_url:
            drop_customers(database_url, table)
        shutil.rmtree(folder, ignore_errors=True)
    ratio = looked_up["events_per_s"] / plain["events_per_s"]
    for name, result in (("without lookup", plain), ("with lookup", looked_up)):
        queries = f"{result['queries']} lookup queries" if result["queries"] else \
            "lookup queries made in lane processes (not counted)" if name == "with lookup" \
            else "no lookup"
        print(f" {name:>15}: {result['received']:,} of {args.rows:,} received, "
              f"{result['events_per_s']:,.0f} events/s, {queries}")
    verdict = "ok" if ratio >= TARGET_RATIO else f"BELOW the target {TARGET_RATIO}"
    print(f" ratio: {ratio:.2f} ({verdict}; {DISTINCT_KEYS:,} distinct keys)")
    if ratio < TARGET_RATIO:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Benchmark: a diff sync (``sync: changed``) over N CSV rows, three runs of one flow into the
counting receiver, each run in its own process (peak memory per run):

1. first run: every record is new, all are sent;
2. the same file again: nothing is sent (every record unchanged);
3. 1% of the rows changed (a mapped column): exactly those are sent.

Reports seconds, events received, peak memory (VmHWM) of each run, the speed-up of run 2 over
run 1, and the snapshot's size on disk (SQLite: the diff tables' pages).

    python bench/diff_bench.py --rows 1000000
    python bench/diff_bench.py --rows 1000000 --postgresql postgresql://postgres@127.0.0.1:5432

``--postgresql`` keeps segbridge's database (and the snapshot) in a new database on that
server (dropped at the end) and reports the snapshot's size there (the diff tables with their
indexes and TOAST, ``pg_total_relation_size``; not ``diff_staged``, whose rows the merge
deletes and whose pages autovacuum takes back).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flows_bench import PROPERTIES, cpu_seconds, peak_rss_mb, received, start_receiver

WRITE_KEY = "benchbenchbenchbenchbenchbench12"
CHANGED_EVERY = 100  # 1% of the rows


def write_rows(path: Path, rows: int, *, changed: bool = False) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "created_at", *PROPERTIES])
        for i in range(rows):
            total = "0.01" if changed and i % CHANGED_EVERY == 0 else f"{i % 997}.50"
            writer.writerow([f"user-{i % 50_000}", "2026-11-28T10:00:00Z", i, total,
                             "EUR", f"sku-{i % 311}", i % 7 + 1])


def run_once(home: Path, url: str, csv_path: Path) -> dict[str, Any]:
    """One run of the bench flow (made by the first run) in this process."""
    from segbridge.accounts.service import principal_for
    from segbridge.connections.model import ConnectionDraft
    from segbridge.core.gc_tuning import freeze_long_lived_objects
    from segbridge.core.settings import load_settings
    from segbridge.runs.executor import run_in_foreground
    from segbridge.runs.lanes import lane_policy
    from segbridge.runtime import build_runtime, first_start
    from segbridge.storage.models import User

    settings = load_settings(home=home, http_timeout_seconds=60, file_roots=str(csv_path.parent))
    runtime = build_runtime(settings)
    first_start(runtime)
    with runtime.db.session() as session:
        principal = principal_for(session.query(User).one(), via="cli")
    flows = runtime.flows.list_all(principal)
    if flows:
        flow = flows[0]
    else:
        runtime.connections.create(principal, ConnectionDraft(
            name="Bench", application="segment", settings={"write_key": WRITE_KEY,
                                                           "endpoint": url}))
        runtime.integrations.create(principal, "Bench")
        flow = runtime.flows.create(principal, {
            "name": "Bench", "integration": "Bench",
            "export": {"type": "csv", "path": str(csv_path), "key_field": "order_id"},
            "imports": [{"name": "Track", "connection": "Bench", "call": "track",
                         "sync": "changed", "mapping": {
                             "userId": "user_id", "event": {"constant": "Order Completed"},
                             "timestamp": {"field": "created_at"},
                             "properties": {"fields": {name: name for name in PROPERTIES}}}}]})
    run = runtime.flows.start_run(principal, flow.id, execute=False)
    freeze_long_lived_objects()
    cpu, started = cpu_seconds(), time.perf_counter()
    result = run_in_foreground(runtime.db, runtime.vault, runtime.settings, run.id,
                               timeout=60, lanes=lane_policy(settings))
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    assert result.status == "succeeded", result
    per = result.counts.imports.get("Track", {})
    runtime.db.dispose()
    return {"seconds": seconds, "cpu": cpu, "sent": result.counts.totals["sent"],
            "diff": {key: per.get(key, 0) for key in ("new", "changed", "unchanged")},
            "peak_rss_mb": peak_rss_mb()}


def measure(home: Path, url: str, csv_path: Path) -> dict[str, Any]:
    before = received(url)
    output = subprocess.run([sys.executable, __file__, "--child", str(home), "--url", url,
                             "--csv", str(csv_path)],
                            check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["received"] = received(url) - before
    return result


def snapshot_bytes(home: Path, postgresql: str | None) -> int:
    """The diff tables' pages in the SQLite database (dbstat), or their total relation size
    in the PostgreSQL database at ``postgresql``."""
    if postgresql:
        import psycopg

        with psycopg.connect(postgresql) as connection:
            row = connection.execute(
                "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND c.relname LIKE 'diff_%' "
                "AND c.relname <> 'diff_staged' "  # (a run's staged rows: deleted by its
                # merge, their pages left to autovacuum)
                "AND n.nspname = current_schema()").fetchone()
        return int(row[0] or 0) if row else 0
    import sqlite3

    path = home / "segbridge.sqlite3"
    with sqlite3.connect(path) as connection:
        try:
            row = connection.execute(
                "SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'diff_%' "
                "OR name LIKE 'sqlite_autoindex_diff_%'").fetchone()
        except sqlite3.OperationalError:  # no dbstat in this SQLite: the whole file
            return path.stat().st_size
    return int(row[0] or 0)


BENCH_DATABASE = "segbridge_diff_bench"


def fresh_postgresql_database(server: str) -> str:
    """A new, empty database on the server (an earlier bench's dropped first): its URL."""
    drop_postgresql_database(server)
    import psycopg

    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    return f"{server.rstrip('/')}/{BENCH_DATABASE}"


def drop_postgresql_database(server: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--csv")
    parser.add_argument("--postgresql", help="a PostgreSQL server's URL (libpq form): "
                        "segbridge's database in a new database there")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once(Path(args.child), args.url, Path(args.csv))))
        return
    database = None
    if args.postgresql:
        database = fresh_postgresql_database(args.postgresql)
        os.environ["SEGBRIDGE_DATABASE_URL"] = database.replace(
            "postgresql://", "postgresql+psycopg://", 1)  # (the runs' processes inherit it)
    workdir = Path(tempfile.mkdtemp(prefix="diff-bench-"))
    csv_path, home = workdir / "rows.csv", workdir / "home"
    write_rows(csv_path, args.rows)
    receiver, url = start_receiver()
    try:
        first = measure(home, url, csv_path)
        again = measure(home, url, csv_path)
        write_rows(csv_path, args.rows, changed=True)
        changed = measure(home, url, csv_path)
        size = snapshot_bytes(home, database)
    finally:
        receiver.terminate()
        if args.postgresql:
            drop_postgresql_database(args.postgresql)
    expected = len(range(0, args.rows, CHANGED_EVERY))
    for name, result in (("first", first), ("unchanged", again), ("1% changed", changed)):
        print(f"{name:>11}: {result['seconds']:6.1f} s, {result['cpu']:6.1f} CPU s (the run's "
              f"processes), {result['received']:,} received, "
              f"{result['diff']}, peak {result['peak_rss_mb']:.0f} MB")
    print(f"   speed-up: the unchanged run took {first['seconds'] / again['seconds']:.1f}x "
          f"less time than the first ({first['cpu'] / again['cpu']:.1f}x less CPU)")
    print(f"   1% changed: {changed['received']:,} sent, {expected:,} expected")
    print(f"   snapshot: {size / 1e6:.1f} MB on disk ({'PostgreSQL' if database else 'SQLite'}) "
          f"for {args.rows:,} keys "
          f"({size / max(args.rows, 1):.0f} bytes a key)")
    shutil.rmtree(workdir, ignore_errors=True)
    if again["received"] or changed["received"] != expected:
        sys.exit("the diff sent what it should not have")


if __name__ == "__main__":
    main()

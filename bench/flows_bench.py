"""Benchmark: N CSV rows mapped to track calls, delivered by segbridge, against the same N
track calls sent by segment-analytics-python (queue large enough to drop nothing, other
settings default). Same machine, same receiver (bench/counting_receiver.py), one after the
other. Reports events/s, CPU seconds per million events and peak memory (VmHWM) of each
sender, each measured in its own process (segbridge's install, its database migrated and the
flow made, is set up in a process before, as on a machine where segbridge is installed).

    python bench/flows_bench.py --rows 1000000            # both
    python bench/flows_bench.py --rows 10000000 --only segbridge
    python bench/flows_bench.py --only ceiling            # the receiver's own limit
    python bench/flows_bench.py --rows 1000000 --only segbridge --format ndjson  # same rows
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
PROPERTIES = ("order_id", "total", "currency", "sku", "quantity")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(HERE / "counting_receiver.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/count", trust_env=False)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the receiver did not start")


def received(url: str) -> int:
    return int(httpx.get(f"{url}/count", trust_env=False).json()["calls"])


def write_rows(path: Path, rows: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "created_at", *PROPERTIES])
        for i in range(rows):
            writer.writerow([f"user-{i % 50_000}", "2026-11-28T10:00:00Z", i, f"{i % 997}.50",
                             "EUR", f"sku-{i % 311}", i % 7 + 1])


def write_ndjson(csv_path: Path, path: Path) -> None:
    """The same rows as JSON lines (string values, as the CSV export gives them)."""
    import orjson

    with csv_path.open(newline="") as handle, path.open("wb") as out:
        for row in csv.DictReader(handle):
            out.write(orjson.dumps(row) + b"\n")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    """Of this process and of its children that ended (segbridge's lane processes)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class ChildrenPeaks:
    """The peak RSS (VmHWM) of each child process (segbridge's lanes), and the CPU seconds it
    had used when last seen, sampled from /proc while they run. (getrusage's ru_maxrss of
    children counts the parent's pages a child had between fork and exec, so it overstates
    them.)"""

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ChildrenPeaks:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            for pid in self._children():
                self._read(pid)

    @staticmethod
    def _children() -> set[int]:
        pids: set[int] = set()
        for task in Path("/proc/self/task").iterdir():
            try:
                pids.update(int(pid) for pid in (task / "children").read_text().split())
            except OSError:
                continue
        return pids

    def _read(self, pid: int) -> None:
        try:
            if b"segbridge.runs.lanes" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                return  # forked, not yet a lane: its VmHWM is this process's (it read 91 MB)
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return
        self.cpu[pid] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self.peaks[pid] = max(int(line.split()[1]) / 1024, self.peaks.get(pid, 0.0))


def set_up_segbridge(home: Path, url: str, csv_path: Path) -> None:
    """A segbridge install with the bench flow (its own process: the run's process then starts
    on a migrated database, as `segbridge flows run` does on an install)."""
    from segbridge.accounts.service import principal_for
    from segbridge.connections.model import ConnectionDraft
    from segbridge.runtime import build_runtime, first_start
    from segbridge.storage.models import User

    runtime = build_runtime(_settings(home, csv_path))
    first_start(runtime)
    with runtime.db.session() as session:
        principal = principal_for(session.query(User).one(), via="cli")
    runtime.connections.create(principal, ConnectionDraft(
        name="Bench", application="segment",
        settings={"write_key": "benchbenchbenchbenchbenchbench12", "endpoint": url}))
    runtime.integrations.create(principal, "Bench")
    runtime.flows.create(principal, {
        "name": "Bench", "integration": "Bench",
        "export": {"type": "ndjson" if csv_path.suffix == ".ndjson" else "csv",
                   "path": str(csv_path)},
        "imports": [{"name": "Track", "connection": "Bench", "call": "track", "mapping": {
            "userId": "user_id", "event": {"constant": "Order Completed"},
            "timestamp": {"field": "created_at"},
            "properties": {"fields": {name: name for name in PROPERTIES}}}}]})
    runtime.db.dispose()


def _settings(home: Path, csv_path: Path) -> Any:
    from segbridge.core.settings import load_settings

    return load_settings(home=home, http_timeout_seconds=60,
                         file_roots=str(csv_path.parent))  # the flow reads the file there


def run_segbridge(home: Path, csv_path: Path) -> dict[str, Any]:
    """One run of the bench flow of the install at ``home``, in this process."""
    from segbridge.accounts.service import principal_for
    from segbridge.core.gc_tuning import freeze_long_lived_objects
    from segbridge.runs.executor import run_in_foreground
    from segbridge.runs.lanes import lane_policy
    from segbridge.runtime import build_runtime
    from segbridge.storage.models import User

    settings = _settings(home, csv_path)
    runtime = build_runtime(settings)
    with runtime.db.session() as session:
        principal = principal_for(session.query(User).one(), via="cli")
    flow = runtime.flows.list_all(principal)[0]
    run = runtime.flows.start_run(principal, flow.id, execute=False)
    freeze_long_lived_objects()  # as `segbridge flows run` does before its run
    lanes = lane_policy(settings)  # as `segbridge flows run` does
    cpu, started = cpu_seconds(), time.perf_counter()
    with ChildrenPeaks() as children:
        result = run_in_foreground(runtime.db, runtime.vault, runtime.settings, run.id,
                                   timeout=60, lanes=lanes)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    assert result.status == "succeeded", result
    runtime.db.dispose()
    return {"sent": result.counts.totals["sent"], "seconds": seconds, "cpu": cpu,
            "lane_peaks_mb": sorted(children.peaks.values()),
            "lanes_cpu": sum(children.cpu.values())}


def run_analytics(url: str, rows: int, csv_path: Path) -> dict[str, Any]:
    import segment.analytics as analytics

    analytics.write_key = "benchbenchbenchbenchbenchbench12"
    analytics.host = url
    analytics.max_queue_size = rows + 1
    cpu, started = cpu_seconds(), time.perf_counter()
    with csv_path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            analytics.track(row["user_id"], "Order Completed",
                            {name: row[name] for name in PROPERTIES},
                            timestamp=None)
    analytics.flush()
    analytics.shutdown()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {"sent": rows, "seconds": seconds, "cpu": cpu}


def child(which: str, url: str, rows: int, csv_path: Path, home: Path | None) -> None:
    if which == "segbridge-setup":
        assert home is not None
        set_up_segbridge(home, url, csv_path)
        return
    result = run_segbridge(home, csv_path) if which == "segbridge" and home is not None \
        else run_analytics(url, rows, csv_path)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure(which: str, url: str, rows: int, csv_path: Path) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="segbridge-bench-"))
    command = [sys.executable, __file__, "--url", url, "--rows", str(rows), "--csv",
               str(csv_path), "--home", str(home)]
    try:
        if which == "segbridge":
            subprocess.run([*command, "--child", "segbridge-setup"], check=True,
                           capture_output=True)
        before = received(url)
        output = subprocess.run([*command, "--child", which], check=True, capture_output=True,
                                text=True).stdout
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["received"] = received(url) - before
    result["events_per_s"] = result["received"] / result["seconds"]
    result["cpu_s_per_million"] = result["cpu"] / rows * 1_000_000
    return result


def receiver_ceiling(url: str, batches: int = 480, in_flight: int = 8) -> float:
    """Events/s the receiver takes from a client that only replays one pre-built gzip batch of
    2,000 track calls: what no sender on this machine can pass."""
    import asyncio
    import gzip

    import orjson

    calls = [orjson.dumps({
        "type": "track", "event": "Order Completed", "userId": f"user-{i}",
        "timestamp": "2026-11-28T10:00:00.000Z", "messageId": f"sb-{i:032x}",
        "properties": {"order_id": str(i), "total": "12.50", "currency": "EUR",
                       "sku": "sku-1", "quantity": "3"}}) for i in range(2000)]
    body = gzip.compress(b'{"batch":[' + b",".join(calls) + b"]}", 3)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}

    async def replay() -> float:
        async with httpx.AsyncClient(trust_env=False) as client:
            async def worker(count: int) -> None:
                for _ in range(count):
                    (await client.post(f"{url}/v1/batch", content=body,
                                       headers=headers)).raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(worker(batches // in_flight) for _ in range(in_flight)))
            return batches // in_flight * in_flight * len(calls) / (time.perf_counter() - started)

    return asyncio.run(replay())


def _cpu_split(result: dict[str, Any]) -> str:
    """The run process's and the lanes' shares of the CPU seconds, with lanes."""
    lanes = result.get("lanes_cpu")
    if not lanes:
        return ""
    return f" (run process {result['cpu'] - lanes:.1f} s, lanes {lanes:.1f} s)"


def _memory(result: dict[str, Any]) -> str:
    """The run process's peak, and with lanes the sum of every process's peak."""
    lanes = result.get("lane_peaks_mb", [])
    if not lanes:
        return f"{result['peak_rss_mb']:.0f} MB"
    total = result["peak_rss_mb"] + sum(lanes)
    each = " + ".join(f"{peak:.0f}" for peak in lanes)
    return (f"{total:.0f} MB in all ({result['peak_rss_mb']:.0f} MB run process + lanes "
            f"{each} MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["segbridge", "analytics", "ceiling"])
    parser.add_argument("--format", choices=["csv", "ndjson"], default="csv",
                        help="the file segbridge reads (analytics-python reads the CSV)")
    parser.add_argument("--child")
    parser.add_argument("--home")
    parser.add_argument("--url")
    parser.add_argument("--csv")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.rows, Path(args.csv),
              Path(args.home) if args.home else None)
        return
    workdir = Path(tempfile.mkdtemp(prefix="flows-bench-"))
    csv_path = workdir / "rows.csv"
    if args.only != "ceiling":
        write_rows(csv_path, args.rows)
        if args.format == "ndjson":
            write_ndjson(csv_path, workdir / "rows.ndjson")
    receiver, url = start_receiver()
    try:
        if args.only == "ceiling":
            print(f"   ceiling: the receiver takes {receiver_ceiling(url):,.0f} events/s of "
                  "pre-built batches")
            return
        for which in (["segbridge", "analytics"] if not args.only else [args.only]):
            source = workdir / "rows.ndjson" if args.format == "ndjson" and \
                which == "segbridge" else csv_path
            result = measure(which, url, args.rows, source)
            print(f"{which:>10}: {result['received']:,} of {args.rows:,} received, "
                  f"{result['events_per_s']:,.0f} events/s, "
                  f"{result['cpu_s_per_million']:.1f} CPU s per million{_cpu_split(result)}, "
                  f"peak {_memory(result)}")
    finally:
        receiver.terminate()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

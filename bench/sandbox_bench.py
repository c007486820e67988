"""Throughput and memory of the sandbox receiver (a benchmark, not a test).

Starts ``python -m segbridge.sandbox`` (uvicorn with uvloop and httptools) in a subprocess,
posts gzip batches of track calls (about 475 KB of JSON and 2,000 calls each, every call with
its own messageId) from this process with a few concurrent httpx requests, and reports the
events accepted per second (from the receiver's own counters), the receiver's CPU seconds per
million events (utime + stime from /proc/<pid>/stat) and its resident memory over time and at
its peak (VmHWM in /proc/<pid>/status). With ``--workers N`` the receiver reads batches in N
more processes: their CPU is counted with the receiver's, their memory is shown apart.

The batches are built and gzipped before the clock starts (as flows_bench's ``ceiling``
mode), so the number is the receiver's, not the sender's.

    .venv/bin/python bench/sandbox_bench.py                     # 5,000,000 events
    .venv/bin/python bench/sandbox_bench.py --events 500000 --dedup-capacity 100000
    .venv/bin/python bench/sandbox_bench.py --events 1000000 --receiver-src /tmp/old/src

With a small --dedup-capacity the dedup window fills early and the memory line goes flat.
``--receiver-src`` runs the receiver from another checkout's ``src`` (paired before/after runs).

    .venv/bin/python bench/sandbox_bench.py --events 1000000 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

CALLS_PER_BATCH = 2_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid`` (its workers), and theirs."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def tree_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds so far of each process still running."""
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            seconds[pid] = proc_cpu_seconds(pid)
        except OSError:
            continue
    return seconds


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


@dataclass
class MemorySampler:
    pid: int
    every: float = 1.0
    samples: list[tuple[float, int]] = field(default_factory=list)
    peak_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self.every):
            self.sample(time.monotonic() - start)

    def sample(self, at: float) -> None:
        try:
            memory = proc_memory(self.pid)
        except OSError:
            return
        self.samples.append((at, memory.get("VmRSS", 0)))
        self.peak_kib = max(self.peak_kib, memory.get("VmHWM", 0))

    def stop(self) -> None:
        self._stop.set()


def start_receiver(args: argparse.Namespace, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    token = secrets.token_urlsafe(32)
    token_file = workdir / "admin-token"
    token_file.write_text(token)
    if args.receiver_src:
        src = str(Path(args.receiver_src).resolve())
        run = (
            f"import sys; sys.path.insert(0, {src!r}); import runpy; "
            "runpy.run_module('segbridge.sandbox', run_name='__main__', alter_sys=True)"
        )
        command = [sys.executable, "-c", run]
    else:
        command = [sys.executable, "-m", "segbridge.sandbox"]
    command += [
        "--port",
        str(args.port),
        "--admin-token-file",
        str(token_file),
        "--dedup-capacity",
        str(args.dedup_capacity),
    ]
    if args.archive:
        command += ["--archive", str(workdir / "archive.ndjson")]
    if args.workers:
        command += ["--workers", str(args.workers)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, token


def wait_ready(url: str, token: str, timeout: float = 20.0) -> str:
    """The default source's write key, once the receiver answers."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/api/sources", headers=headers, timeout=2)
            key: str = response.json()["sources"][0]["write_key"]
            return key
        except (httpx.HTTPError, KeyError, IndexError, ValueError):
            time.sleep(0.1)
    raise SystemExit("the receiver did not start")


def make_batch(run: str, start: int, count: int, level: int) -> bytes:
    """A gzip body of ``count`` track calls (about 240 bytes of JSON each)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    calls = [
        {
            "type": "track",
            "event": "Order Completed",
            "userId": f"user-{i % 100_000}",
            "messageId": f"{run}-{i}",
            "timestamp": now,
            "properties": {"order_id": f"o-{i}", "revenue": 12.5},
            "context": {"library": {"name": "bench", "version": "1.0"}},
        }
        for i in range(start, start + count)
    ]
    return gzip.compress(orjson.dumps({"batch": calls, "sentAt": now}), level)


def make_batches(args: argparse.Namespace) -> list[tuple[int, bytes]]:
    """Every batch of the run, built and gzipped before anything is timed."""
    run = secrets.token_hex(4)
    batches = []
    for start in range(0, args.events, CALLS_PER_BATCH):
        count = min(CALLS_PER_BATCH, args.events - start)
        batches.append((count, make_batch(run, start, count, args.gzip_level)))
    return batches


async def send_all(
    args: argparse.Namespace, url: str, write_key: str, batches: list[tuple[int, bytes]]
) -> tuple[int, float]:
    pending = list(reversed(batches))
    sent = 0
    auth = httpx.BasicAuth(write_key, "")
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    limits = httpx.Limits(max_connections=args.concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while pending:
            count, body = pending.pop()
            response = await client.post("/v1/batch", content=body, headers=headers, auth=auth)
            response.raise_for_status()
            sent += count

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))
        return sent, time.perf_counter() - began


def accepted(url: str, token: str) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {token}"}
    sources = httpx.get(f"{url}/api/sources", headers=headers).json()["sources"]
    stats: dict[str, int] = httpx.get(
        f"{url}/api/sources/{sources[0]['id']}/stats", headers=headers
    ).json()
    return stats


def report(
    args: argparse.Namespace,
    sent: int,
    elapsed: float,
    stats: dict[str, int],
    sampler: MemorySampler,
    cpu_seconds: float,
) -> None:
    rate = stats["accepted"] / elapsed
    print(
        f"events sent      {sent:,} in batches of {CALLS_PER_BATCH:,} "
        f"(concurrency {args.concurrency}, gzip level {args.gzip_level})"
    )
    print(
        f"events accepted  {stats['accepted']:,} (duplicates {stats['duplicates']:,}, "
        f"dropped {stats['dropped']:,}, rejected requests {stats['rejected']:,})"
    )
    print(f"elapsed          {elapsed:.1f} s")
    print(f"throughput       {rate:,.0f} events/s accepted")
    per_million = cpu_seconds / max(sent, 1) * 1e6
    print(
        f"receiver CPU     {cpu_seconds:.2f} s = {per_million:.2f} CPU s per million events"
        " (its workers included)"
    )
    print(
        f"peak RSS         {sampler.peak_kib / 1024:.1f} MiB (VmHWM), dedup capacity "
        f"{args.dedup_capacity:,}"
    )
    step = max(1, len(sampler.samples) // 12)
    line = ", ".join(f"{t:.0f}s {kib / 1024:.0f}" for t, kib in sampler.samples[::step])
    print(f"RSS over time    (MiB) {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--dedup-capacity", type=int, default=1_000_000)
    parser.add_argument("--gzip-level", type=int, default=1)
    parser.add_argument("--archive", action="store_true", help="also archive (fsync) events")
    parser.add_argument(
        "--workers", type=int, default=0, help="the receiver's --workers (batch readers)"
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--receiver-src", default="", help="run the receiver from this src directory (paired runs)"
    )
    args = parser.parse_args()
    args.port = args.port or free_port()
    url = f"http://127.0.0.1:{args.port}"
    batches = make_batches(args)
    with tempfile.TemporaryDirectory() as tmp:
        process, token = start_receiver(args, Path(tmp))
        try:
            write_key = wait_ready(url, token)
            sampler = MemorySampler(process.pid)
            sampler.sample(0.0)
            sampler.start()
            pids = [process.pid, *descendants(process.pid)]  # with its workers
            cpu_before = tree_cpu_seconds(pids)
            sent, elapsed = asyncio.run(send_all(args, url, write_key, batches))
            cpu_after = tree_cpu_seconds(pids)
            cpu_seconds = sum(cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after)
            workers_kib = sum(proc_memory(pid).get("VmRSS", 0) for pid in pids[1:])
            sampler.stop()
            sampler.sample(elapsed)
            report(args, sent, elapsed, accepted(url, token), sampler, cpu_seconds)
            if len(pids) > 1:
                front = cpu_after[process.pid] - cpu_before[process.pid]
                print(
                    f"worker processes {len(pids) - 1}, {workers_kib / 1024:.1f} MiB RSS in all; "
                    f"CPU s per million events: front {front / sent * 1e6:.2f}, "
                    f"workers {(cpu_seconds - front) / sent * 1e6:.2f}"
                )
        finally:
            process.terminate()
            process.wait(10)
            if process.returncode not in (0, -15) and process.stderr:
                sys.stderr.write(process.stderr.read().decode())
        print(f"receiver pid {process.pid}, cpu count {os.cpu_count()}")


if __name__ == "__main__":
    main()

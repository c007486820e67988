"""CPU per MB and compressed size of the gzip libraries on real batch bodies (a benchmark).

A batch body here is what ``apps/segment/sink.gzip_batch`` compresses: about 480 KB of JSON,
2,000 track calls shaped as ``bench/flows_bench.py``'s flow maps them (userId, event,
timestamp, five properties, a messageId of its own). Each library
compresses the same bodies with the same group-at-a-time streaming as ``gzip_batch``; the
libraries are measured in alternating rounds so a drift of the machine hits them all alike,
and the best round (the least disturbed by other processes) is reported per library, with the
median beside it.

    .venv/bin/python bench/gzip_bench.py                        # levels 1 and 3, 7 rounds
    .venv/bin/python bench/gzip_bench.py --levels 1 3 6 --rounds 9

``isal`` (python-isal) has levels 0-3 of its own; they are not zlib's levels, so its rows say
which of its levels ran. Every output is checked by inflating it with the standard library.

With ``--flow ROWS`` it measures the whole flow instead, in pairs: ``bench/flows_bench.py``'s
CSV flow run in a child process with segbridge's gzip on ISA-L and on zlib (``sink.ISAL``
switched in the child, for measurement only), alternating, against one counting receiver;
CPU seconds per million events count the run process and its lanes.

    .venv/bin/python bench/gzip_bench.py --flow 1000000 --rounds 4
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import flows_bench  # bench/ is not a package: found through the path above

CALLS_PER_BATCH = 2_000
GROUP = 128
WBITS = 16 + 15


def batch_calls(batch: int) -> list[bytes]:
    calls = []
    for n in range(CALLS_PER_BATCH):
        i = batch * CALLS_PER_BATCH + n
        calls.append(orjson.dumps({
            "type": "track", "userId": f"user-{i % 50_000}", "event": "Order Completed",
            "timestamp": "2026-11-28T10:00:00Z",
            "properties": {"order_id": i, "total": f"{i % 997}.50", "currency": "EUR",
                           "sku": f"sku-{i % 311}", "quantity": i % 7 + 1},
            "messageId": f"sb-3f9a2c71d0b84e6a-{i:012d}"}))
    return calls


def compressor(name: str) -> Callable[[int], Any]:
    """A ``compressobj``-like factory for a gzip container at a level."""
    if name == "zlib":
        return lambda level: zlib.compressobj(level, zlib.DEFLATED, WBITS)
    module: Any = importlib.import_module({"zlib-ng": "zlib_ng.zlib_ng",
                                           "isal": "isal.isal_zlib"}[name])
    return lambda level: module.compressobj(level, module.DEFLATED, WBITS)


def gzip_body(make: Callable[[int], Any], level: int, calls: list[bytes]) -> bytes:
    stream = make(level)
    parts = [stream.compress(b'{"batch":[')]
    for start in range(0, len(calls), GROUP):
        group = b",".join(calls[start:start + GROUP])
        parts.append(stream.compress(b"," + group if start else group))
    parts.append(stream.compress(b'],"sentAt":"2026-11-30T05:00:00.000Z"}'))
    parts.append(stream.flush())
    return b"".join(parts)


def one_round(make: Callable[[int], Any], level: int,
              batches: list[list[bytes]]) -> tuple[float, int]:
    """CPU seconds and compressed bytes for compressing every batch once."""
    size = 0
    started = time.process_time()
    for calls in batches:
        size += len(gzip_body(make, level, calls))
    return time.process_time() - started, size


def flow_child(library: str, url: str, rows: int, csv_path: Path) -> None:
    from segbridge.apps.segment import sink

    sink.ISAL = library == "isal"
    flows_bench.child("segbridge", url, rows, csv_path)


def flow_run(library: str, url: str, rows: int, csv_path: Path) -> tuple[float, float]:
    """Events per second and CPU seconds per million events of one flow run."""
    before = flows_bench.received(url)
    output = subprocess.run([sys.executable, __file__, "--flow-child", library, "--url", url,
                             "--flow", str(rows), "--csv", str(csv_path)],
                            check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    received = flows_bench.received(url) - before
    assert received == rows, f"{received:,} of {rows:,} calls received"
    return received / result["seconds"], result["cpu"] / rows * 1e6


def compare_flows(rows: int, rounds: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gzip-bench-"))
    csv_path = workdir / "rows.csv"
    flows_bench.write_rows(csv_path, rows)
    receiver, url = flows_bench.start_receiver()
    runs: dict[str, list[tuple[float, float]]] = {"zlib": [], "isal": []}
    try:
        for round_ in range(rounds):
            for library in ("zlib", "isal") if round_ % 2 == 0 else ("isal", "zlib"):
                rate, cpu = flow_run(library, url, rows, csv_path)
                runs[library].append((rate, cpu))
                print(f"round {round_} {library:5} {rate:10,.0f} events/s "
                      f"{cpu:5.2f} CPU s per million", flush=True)
    finally:
        receiver.terminate()
        shutil.rmtree(workdir, ignore_errors=True)
    for library, results in runs.items():
        print(f"{library:5} median {statistics.median(r for r, _ in results):10,.0f} events/s "
              f"{statistics.median(c for _, c in results):5.2f} CPU s per million")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--flow", type=int, metavar="ROWS",
                        help="compare whole flow runs of ROWS CSV rows instead")
    parser.add_argument("--flow-child", choices=["zlib", "isal"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flow_child:
        flow_child(args.flow_child, args.url, args.flow, Path(args.csv))
        return
    if args.flow:
        compare_flows(args.flow, args.rounds)
        return
    batches = [batch_calls(b) for b in range(args.batches)]
    raw = sum(len(b",".join(calls)) + 50 for calls in batches)
    for calls in batches[:1]:
        body = b'{"batch":[' + b",".join(calls) + b'],"sentAt":"2026-11-30T05:00:00.000Z"}'
        for name in ("zlib", "zlib-ng", "isal"):
            out = gzip_body(compressor(name), min(args.levels), calls)
            assert zlib.decompress(out, WBITS) == body, name
    print(f"{args.batches} batch bodies of {CALLS_PER_BATCH} calls, "
          f"{raw / args.batches / 1000:.0f} KB each; {args.rounds} alternating rounds")
    print(f"{'library':8} {'level':>5} {'best ms/MB':>10} {'median':>8} {'ratio':>6} "
          f"{'KB/batch':>8}")
    for level in args.levels:
        runs: dict[str, list[float]] = {}
        sizes: dict[str, int] = {}
        for _ in range(args.rounds):
            for name in ("zlib", "zlib-ng", "isal"):
                isal_level = min(level, 3)
                cpu, size = one_round(compressor(name),
                                      isal_level if name == "isal" else level, batches)
                runs.setdefault(name, []).append(cpu * 1000 / (raw / 1e6))
                sizes[name] = size
        for name, per_mb in runs.items():
            shown = f"{min(level, 3)}*" if name == "isal" else str(level)
            print(f"{name:8} {shown:>5} {min(per_mb):10.2f} {statistics.median(per_mb):8.2f} "
                  f"{raw / sizes[name]:6.2f} {sizes[name] / args.batches / 1000:8.1f}")
    print("* isal's own level (0-3), not zlib's")


if __name__ == "__main__":
    main()

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
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
import zlib
from collections.abc import Callable
from typing import Any

import orjson

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 3])
    args = parser.parse_args()
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

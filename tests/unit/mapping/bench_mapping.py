"""Micro benchmark of a compiled mapping (not collected by pytest).

    .venv/bin/python tests/unit/mapping/bench_mapping.py [records]

Maps N records (default 1,000,000) with a plain track mapping: userId from a field, event a
constant, timestamp ISO-8601, properties with 5 fields (one renamed). Timestamps already in
UTC 'Z' form are only checked; those with an offset are converted (the slower path), so
both are measured.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from segbridge.mapping import compile_mapping

SPEC: dict[str, Any] = {
    "userId": "user_id",
    "event": {"constant": "Order Completed"},
    "timestamp": "created_at",
    "properties": {"fields": {"total": "amount", "currency": "currency", "sku": "sku",
                              "quantity": "qty", "coupon": "coupon"}},
}


def records(count: int, stamp: str) -> list[dict[str, Any]]:
    return [{"user_id": f"u{i}", "amount": i * 0.5, "currency": "EUR", "sku": f"SKU-{i % 97}",
             "qty": i % 5, "coupon": "SPRING", "created_at": stamp} for i in range(count)]


def measure(label: str, data: list[dict[str, Any]]) -> float:
    map_record = compile_mapping("track", SPEC)
    started = time.perf_counter()
    for record in data:
        map_record(record)
    rate = len(data) / (time.perf_counter() - started)
    print(f"{label:<44} {rate:>12,.0f} records/s")
    return rate


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(f"mapping {count:,} track records (best of 3)")
    for label, stamp in (("timestamp already UTC (2024-05-01T12:34:56.789Z)",
                          "2024-05-01T12:34:56.789Z"),
                         ("timestamp with offset (2024-05-01T14:34:56+02:00)",
                          "2024-05-01T14:34:56+02:00")):
        data = records(count, stamp)
        best = max(measure(label, data) for _ in range(3))
        print(f"{'  best':<44} {best:>12,.0f} records/s")


if __name__ == "__main__":
    main()

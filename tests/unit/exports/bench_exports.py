"""Micro benchmark of the file exports (not collected by pytest: run it directly).

    .venv/bin/python tests/unit/exports/bench_exports.py            # 1,000,000-row CSV
    .venv/bin/python tests/unit/exports/bench_exports.py --rows 13000000 --kinds csv  # ~1 GB
    .venv/bin/python tests/unit/exports/bench_exports.py --kinds csv,ndjson,json

Writes a 6-column UTF-8 file to a temporary folder, reads it back through the export the way
the engine does (a for loop over records()), and prints rows/s (wall and CPU) and the peak RSS
of the process. The file is written in chunks, so the peak RSS is the reader's.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from segbridge.apps.files.csv_export import CsvExport
from segbridge.apps.files.json_array import JsonArrayExport
from segbridge.apps.files.ndjson import NdjsonExport
from segbridge.exports.contracts import Export

CHUNK_ROWS = 10_000


def csv_lines(rows: int) -> Iterator[str]:
    yield "id,email,name,city,amount,created_at\n"
    for i in range(rows):
        yield (f"{i},user{i}@example.com,User {i},Paris,{i % 1000}.{i % 100:02d},"
               f"2024-01-{1 + i % 28:02d}T10:00:00Z\n")


def ndjson_lines(rows: int) -> Iterator[str]:
    for i in range(rows):
        yield (f'{{"id": {i}, "email": "user{i}@example.com", "name": "User {i}", '
               f'"city": "Paris", "amount": {i % 1000}.{i % 100:02d}, '
               f'"created_at": "2024-01-{1 + i % 28:02d}T10:00:00Z"}}\n')


def json_lines(rows: int) -> Iterator[str]:
    yield "["
    for i, line in enumerate(ndjson_lines(rows)):
        yield ("," if i else "") + line
    yield "]\n"


KINDS: dict[str, tuple[Callable[[int], Iterator[str]], Callable[[Path], Export]]] = {
    "csv": (csv_lines, CsvExport),
    "ndjson": (ndjson_lines, NdjsonExport),
    "json": (json_lines, JsonArrayExport),
}


def write(path: Path, lines: Iterator[str]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= CHUNK_ROWS:
                handle.write("".join(chunk))
                chunk.clear()
        handle.write("".join(chunk))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, rows: int, folder: Path) -> None:
    make_lines, make_export = KINDS[kind]
    path = folder / f"bench.{kind}"
    write(path, make_lines(rows))
    size_mb = path.stat().st_size / 1e6
    before = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    count = errors = 0
    for record in make_export(path).records():
        count += 1
        if record.error is not None:
            errors += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert count == rows and errors == 0, (count, errors)
    print(f"{kind:7s} {rows:>11,} rows  {size_mb:8.1f} MB  {count / wall:>10,.0f} rows/s wall  "
          f"{count / cpu:>10,.0f} rows/s cpu  peak RSS {peak_rss_mb():6.1f} MB "
          f"(before reading {before:.1f} MB)")
    path.unlink()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kinds", default="csv")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the file")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for kind in args.kinds.split(","):
            measure(kind, args.rows, Path(folder))


if __name__ == "__main__":
    main(sys.argv[1:])

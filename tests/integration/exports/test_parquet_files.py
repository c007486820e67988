"""Parquet through the Files application: the conformance kit (a file, a folder of parts,
resumed anywhere, failures with their causes), the access policy for every part (a part that
is a symlink out of the allowed roots is refused), and a 1M-row file read with flat memory."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segbridge.apps.base import ExportRequest
from segbridge.apps.files.app import FilesApplication
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import NotAllowedHere
from segbridge.exports.limits import RecordLimits
from tests.kit import ApplicationConformance, Case, ExportSample

NO_CONNECTION = "Files has no connection: a flow names its file"


def table(count: int, first: int = 0) -> pa.Table:
    ids = list(range(first, first + count))
    return pa.table({"id": ids, "email": [f"u{n}@x.io" if n % 5 else None for n in ids],
                     "tags": [[f"t{n}", "x"] for n in ids],
                     "plan": [{"name": "gold", "seats": n} for n in ids]})


def write_parts(folder: Path) -> Path:
    folder.mkdir()
    pq.write_table(table(25), folder / "part-0001.parquet", row_group_size=10)
    pq.write_table(table(13, first=25), folder / "part-0002.parquet", row_group_size=4)
    return folder


class TestParquetConformance(ApplicationConformance):
    application = FilesApplication()
    not_applicable: ClassVar = {case: NO_CONNECTION for case in Case}
    export_samples = ("parquet_file", "parquet_folder", "parquet_columns")
    failing_exports = ("missing_file", "not_parquet", "outside_the_file_roots",
                       "part_linked_out_of_the_roots")

    @contextmanager
    def export_sample(self, name: str, folder: Path) -> Iterator[ExportSample]:
        if name == "parquet_file":
            path = folder / "orders.parquet"
            pq.write_table(table(40), path, row_group_size=9)
            yield ExportSample({"type": "parquet", "path": str(path)}, resume_at=(8, 9, 10))
        elif name == "parquet_folder":
            parts = write_parts(folder / "orders")
            yield ExportSample({"type": "parquet", "path": str(parts)},
                               resume_at=(9, 10, 24, 25, 26, 29))
        elif name == "parquet_columns":
            parts = write_parts(folder / "orders")
            yield ExportSample({"type": "parquet", "path": str(parts),
                                "columns": ["email", "id"]})
        else:
            yield self._failing(name, folder)

    def _failing(self, name: str, folder: Path) -> ExportSample:
        if name == "missing_file":
            return ExportSample({"type": "parquet", "path": str(folder / "gone.parquet")},
                                fails="file_not_found")
        if name == "not_parquet":
            path = folder / "orders.parquet"
            path.write_text("id,email\n1,a@x.io\n")
            return ExportSample({"type": "parquet", "path": str(path)}, fails="file_error")
        if name == "outside_the_file_roots":
            return ExportSample({"type": "parquet", "path": "/etc/passwd"},
                                fails="not_allowed_here")
        parts = write_parts(folder / "orders")
        outside = folder.parent / f"{folder.name}-outside"
        outside.mkdir(exist_ok=True)
        pq.write_table(table(3), outside / "secret.parquet")
        (parts / "part-0003.parquet").symlink_to(outside / "secret.parquet")
        return ExportSample({"type": "parquet", "path": str(parts)}, fails="not_allowed_here")


def test_the_linked_part_is_named_and_nothing_is_read(tmp_path: Path) -> None:
    parts = write_parts(tmp_path / "orders")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    pq.write_table(table(3), outside / "secret.parquet")
    (parts / "part-0003.parquet").symlink_to(outside / "secret.parquet")
    request = ExportRequest({"type": "parquet", "path": str(parts)}, None,
                            AccessPolicy(file_roots=(parts,), protected=()), RecordLimits(),
                            lambda upload: Path(upload))
    with pytest.raises(NotAllowedHere, match=r"part-0003\.parquet"):
        FilesApplication().open_export(request)


MEASURE = """
import json, resource, sys
import pyarrow as pa
from segbridge.apps.files.parquet import ParquetExport
count = 0
for record in ParquetExport([sys.argv[1]]).records():
    count += 1
print(json.dumps({"count": count, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "arrow_peak": pa.default_memory_pool().max_memory()}))
"""


def measured(path: Path) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True,
                          check=True, text=True, timeout=300)
    result: dict[str, int] = json.loads(done.stdout)
    return result


def big_table(count: int) -> pa.Table:
    ids = pa.array(range(count), pa.int64())
    return pa.table({"id": ids, "email": pa.array([f"user{n}@example.com" for n in range(count)]),
                     "score": pa.array([n * 0.5 for n in range(count)]),
                     "plan": pa.array(["gold", "silver", "bronze", "free"] * (count // 4))})


def test_a_million_rows_are_read_with_flat_memory(tmp_path: Path) -> None:
    """A million rows cost about what ten thousand do: one row group is decoded at a time
    (held whole, the records alone would take some 400 MB)."""
    small, big = tmp_path / "small.parquet", tmp_path / "big.parquet"
    pq.write_table(big_table(10_000), small, row_group_size=100_000)
    pq.write_table(big_table(1_000_000), big, row_group_size=100_000)
    baseline, million = measured(small), measured(big)
    assert million["count"] == 1_000_000 and baseline["count"] == 10_000
    assert million["peak_kb"] - baseline["peak_kb"] < 80 * 1024, (baseline, million)
    assert million["arrow_peak"] < 32 * 1024 * 1024, million  # the file is ~15 MB of Arrow


def opened_records(path: Path, reads: frozenset[str]) -> list[dict[str, object] | None]:
    request = ExportRequest({"type": "parquet", "path": str(path)}, None,
                            AccessPolicy(file_roots=(path,), protected=()), RecordLimits(),
                            lambda upload: Path(upload), reads=reads)
    export = FilesApplication().open_export(request).export
    return [record.data for record in export.records(0)]


def test_each_part_of_a_folder_reads_the_columns_the_flow_reads_that_it_has(
        tmp_path: Path) -> None:
    """A column a later part adds is read there; a part without one lacks that field (the
    flow sets no export.columns: a part is not refused for it)."""
    added, dropped = tmp_path / "added", tmp_path / "dropped"
    for folder, first, second in (
            (added, pa.table({"id": [1], "notes": ["x"]}),
             pa.table({"id": [2], "plan": ["gold"], "notes": ["y"]})),
            (dropped, pa.table({"id": [1], "plan": ["gold"]}), pa.table({"id": [2]}))):
        folder.mkdir()
        pq.write_table(first, folder / "part-0001.parquet")
        pq.write_table(second, folder / "part-0002.parquet")
    reads = frozenset({"id", "plan"})

    assert opened_records(added, reads) == [{"id": 1}, {"id": 2, "plan": "gold"}]
    assert opened_records(dropped, reads) == [{"id": 1, "plan": "gold"}, {"id": 2}]

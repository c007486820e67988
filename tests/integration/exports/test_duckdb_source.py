"""DuckDB as a Database connection: its URLs (a file by absolute path, or in memory), what
they reach for the access policy, Test connection, typed values as JSON, queries over Parquet
and CSV files, a missing or write-locked file in words a user can act on, and the
conformance kit (a .duckdb file, incremental too)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import make_url

from segbridge.apps.base import ConnectionConfig, ExportRequest
from segbridge.apps.database.app import DatabaseApplication
from segbridge.apps.database.connect import create_database_engine
from segbridge.apps.database.export import DatabaseExport
from segbridge.apps.database.url import targets_of, url_problems
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import NotAllowedHere
from segbridge.exports.errors import ExportError, ExportUnavailable
from segbridge.exports.limits import RecordLimits
from tests.integration.apps.test_database_conformance import (
    SQLITE_IS_A_FILE,
    DatabaseConformance,
    database_at,
)
from tests.kit import Case, Expect, ExportSample, Provoked

DUCKDB_IS_A_FILE = SQLITE_IS_A_FILE.replace("SQLite", "DuckDB")


def shop(path: Path) -> Path:
    with duckdb.connect(str(path)) as setup:
        setup.execute("""
            CREATE TABLE orders AS SELECT * FROM (VALUES
              (1, TIMESTAMPTZ '2024-05-01 12:00:00+02', TIMESTAMP '2024-05-01 10:30:00',
               DATE '2024-02-29', 12.50::DECIMAL(10,2), 12345678901234567890::DECIMAL(38,0),
               ['a', NULL], {'city': 'Lyon', 'zip': 69001}, MAP {'plan': 1},
               '\\x00\\xFF'::BLOB, INTERVAL 90 SECOND, NULL::VARCHAR),
              (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'x'))
            AS t(id, at_zone, naive, day, price, big_id, tags, address, attrs, blob, took,
                 note)""")
        setup.execute("SET TimeZone = 'UTC'")
    return path


def test_duckdb_urls_are_checked_and_reach_their_file() -> None:
    assert url_problems("duckdb:////srv/data/shop.duckdb") == []
    assert url_problems("duckdb:///:memory:") == []
    assert url_problems("duckdb:///data/shop.duckdb") == [
        "Give the absolute path of the DuckDB file, duckdb:////srv/data/warehouse.duckdb "
        "(four slashes), or duckdb:///:memory: to query Parquet and CSV files only."]
    assert url_problems("duckdb:////srv/shop.duckdb?enable_external_access=true") == [
        "Remove the options after '?' from the DuckDB URL: segbridge opens DuckDB read-only "
        "with its own settings."]
    assert "duckdb:////absolute/path/file.duckdb" in url_problems("duckdb2:///x")[0]
    assert targets_of("duckdb:////srv/data/shop.duckdb").files == (
        ("settings.url", "/srv/data/shop.duckdb"),)
    assert targets_of("duckdb:///:memory:").files == ()


def test_a_duckdb_file_outside_the_roots_is_refused(tmp_path: Path) -> None:
    policy = AccessPolicy(file_roots=(tmp_path / "allowed",), protected=())
    with pytest.raises(NotAllowedHere, match="outside"):
        policy.check_targets(targets_of(f"duckdb:///{tmp_path / 'shop.duckdb'}"))


def test_test_connection_opens_the_file_read_only(tmp_path: Path) -> None:
    path = shop(tmp_path / "shop.duckdb")
    before = path.stat().st_mtime_ns
    result = DatabaseApplication().ping(ConnectionConfig({"url": f"duckdb:///{path}"}, {}),
                                        timeout=5)
    assert result.ok, result.message
    assert result.message.startswith("Connected to DuckDB")
    assert path.stat().st_mtime_ns == before


def test_values_become_json_as_for_the_other_databases(tmp_path: Path) -> None:
    path = shop(tmp_path / "shop.duckdb")
    export = DatabaseExport(f"duckdb:///{path}", None, "SELECT * FROM orders ORDER BY id")
    first, second = (r.data for r in export.records())
    assert first is not None and second is not None
    assert first["at_zone"].endswith("+00:00") and first["at_zone"].startswith("2024-05-01T10")
    assert {key: value for key, value in first.items() if key != "at_zone"} == {
        "id": 1, "naive": "2024-05-01T10:30:00", "day": "2024-02-29", "price": 12.5,
        "big_id": 12345678901234567890, "tags": ["a", None],
        "address": {"city": "Lyon", "zip": 69001}, "attrs": {"plan": 1}, "blob": "AP8=",
        "took": 90.0, "note": None}
    assert second == {key: None for key in first} | {"id": 2, "note": "x"}


def test_queries_over_parquet_and_csv_files_in_the_roots(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    folder.mkdir()
    for part in range(3):
        pq.write_table(pa.table({"id": [part * 10 + n for n in range(10)],
                                 "kind": ["signup" if n % 2 else "login" for n in range(10)]}),
                       folder / f"part-{part}.parquet")
    (tmp_path / "people.csv").write_text("id,email\n1,a@x.io\n21,b@x.io\n")
    engine = create_database_engine(
        make_url("duckdb:///:memory:"), None, connect_timeout=5,
        policy=AccessPolicy(file_roots=(tmp_path,), protected=()))
    query = (f"SELECT e.id, e.kind, p.email FROM read_parquet('{folder}/*.parquet') e "
             f"LEFT JOIN read_csv('{tmp_path}/people.csv') p USING (id) "
             "WHERE e.kind = 'signup' ORDER BY e.id")
    try:
        records = list(DatabaseExport(engine, None, query, fetch_size=4).records())
    finally:
        engine.dispose()
    assert len(records) == 15
    assert [r.data for r in records[:2]] == [{"id": 1, "kind": "signup", "email": "a@x.io"},
                                             {"id": 3, "kind": "signup", "email": None}]
    assert records[10].data == {"id": 21, "kind": "signup", "email": "b@x.io"}


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    export = DatabaseExport(f"duckdb:///{tmp_path / 'gone.duckdb'}", None, "SELECT 1")
    with pytest.raises(ExportError, match=r"The DuckDB file .*gone\.duckdb does not exist"):
        list(export.records())
    assert not (tmp_path / "gone.duckdb").exists()


HOLD = """
import duckdb, sys, time
connection = duckdb.connect(sys.argv[1])
connection.execute("CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS a")
print("open", flush=True)
sys.stdin.readline()
"""


def test_a_file_another_process_writes_to_can_be_tried_later(tmp_path: Path) -> None:
    path = tmp_path / "busy.duckdb"
    writer = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        with pytest.raises(ExportUnavailable, match="open for writing in another process") \
                as caught:
            list(DatabaseExport(f"duckdb:///{path}", None, "SELECT * FROM t").records())
        assert caught.value.cause == "locked"
    finally:
        assert writer.stdin is not None
        writer.stdin.write("\n")
        writer.stdin.close()
        writer.wait(timeout=30)
        if writer.stdout is not None:
            writer.stdout.close()


class TestDuckdbConformance(DatabaseConformance):
    """A DuckDB file: like SQLite, no address to reach and no user."""

    scheme = "duckdb"
    expected: ClassVar = {Case.NOT_FOUND: Expect("unknown_database")}
    not_applicable: ClassVar = {
        Case.REFUSED: DUCKDB_IS_A_FILE, Case.DNS: DUCKDB_IS_A_FILE,
        Case.TIMEOUT: DUCKDB_IS_A_FILE, Case.UNAUTHORIZED: "DuckDB has no users or passwords",
    }
    failing_exports = ("missing_table", "missing_file", "writing_query")

    @contextmanager
    def provoke(self, case: Case) -> Iterator[Provoked]:
        with tempfile.TemporaryDirectory(prefix="kit-duckdb-") as folder:
            path = Path(folder) / ("kit.duckdb" if case is Case.OK else "missing.duckdb")
            if case is Case.OK:
                duckdb.connect(str(path)).close()
            yield Provoked(database_at(f"duckdb:///{path}"),
                           mentions=() if case is Case.OK else (str(path),))

    def admin(self, folder: Path) -> str:
        return f"duckdb:///{folder / 'kit.duckdb'}"

    @contextmanager
    def reader(self, folder: Path) -> Iterator[ConnectionConfig]:
        yield database_at(self.admin(folder))

    @contextmanager
    def export_sample(self, name: str, folder: Path) -> Iterator[ExportSample]:
        if name == "missing_file":
            yield ExportSample({"type": "database", "query": "SELECT 1"},
                               database_at(f"duckdb:///{folder / 'missing.duckdb'}"),
                               fails="unknown_database")
        elif name == "writing_query":
            duckdb.connect(str(folder / "kit.duckdb")).close()
            yield ExportSample({"type": "database",
                                "query": f"COPY (SELECT 1) TO '{folder}/out.csv'"},
                               database_at(self.admin(folder)), fails="query")
        else:
            yield self._table_sample(name, folder)

    def _table_sample(self, name: str, folder: Path) -> ExportSample:
        """The kit's table (NULLs, text beyond ASCII, floats, times), made with DuckDB's own
        SQL (duckdb-engine cannot create an integer primary key through SQLAlchemy)."""
        path = folder / "kit.duckdb"
        with duckdb.connect(str(path)) as setup:
            setup.execute("CREATE TABLE kit (id INTEGER PRIMARY KEY, name VARCHAR, "
                          "score DOUBLE, seen TIMESTAMP, note VARCHAR)")
        add_rows(path, range(1, 9))
        connection = database_at(self.admin(folder))
        if name == "missing_table":
            return ExportSample({"type": "database", "query": "SELECT * FROM kit_x"},
                                connection, fails="query")
        query = "SELECT * FROM kit ORDER BY id"
        if name == "query":
            return ExportSample({"type": "database", "query": query}, connection)
        return ExportSample({"type": "database", "query": query, "cursor": {"column": "id"}},
                            connection, saved_cursor={"column": "id", "value": 2},
                            between=lambda: add_rows(path, range(100, 104)))


def add_rows(path: Path, ids: range) -> None:
    with duckdb.connect(str(path)) as setup:
        setup.executemany("INSERT INTO kit VALUES (?, ?, ?, ?, ?)", [
            (n, f"Zoë {n}" if n % 3 else None, n / 4, datetime(2026, 1, n % 28 + 1, 12, n % 60),
             "x" * n) for n in ids])


def test_a_flow_export_queries_parquet_files_in_the_roots(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": [1, 2]}), tmp_path / "ids.parquet")
    request = ExportRequest(
        {"type": "database", "connection": "Lake",
         "query": f"SELECT id FROM read_parquet('{tmp_path}/ids.parquet') ORDER BY id"},
        ConnectionConfig({"url": "duckdb:///:memory:"}, {}),
        AccessPolicy(file_roots=(tmp_path,), protected=()), RecordLimits(),
        lambda upload: Path(upload))
    opened = DatabaseApplication().open_export(request)
    assert [r.data for r in opened.export.records()] == [{"id": 1}, {"id": 2}]

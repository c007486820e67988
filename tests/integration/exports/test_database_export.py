"""DatabaseExport against real SQLite, PostgreSQL and MariaDB: streaming, types, positions,
incremental runs with fixed bounds and a lag, and clear errors."""



from __future__ import annotations

import base64
import gc
import sys
import time
import tracemalloc
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from segbridge.apps.database.cursor import CursorBounds, next_cursor_value
from segbridge.apps.database.export import DatabaseExport
from segbridge.exports.contracts import SourceRecord
from segbridge.exports.errors import ExportError, ExportUnavailable
from tests.integration.exports.dbs import Db

TS = {"sqlite": "TEXT", "postgresql": "TIMESTAMPTZ", "mariadb": "DATETIME(6)"}
NOW = {"sqlite": "datetime('now', '{} seconds')",
       "postgresql": "now() + interval '{} seconds'",
       "mariadb": "NOW(6) + INTERVAL {} SECOND"}
ROWS_200K = {
    "sqlite": "WITH RECURSIVE s(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM s WHERE id < "
              "200000) SELECT id, hex(zeroblob(40)) AS pad FROM s",
    "postgresql": "SELECT g AS id, repeat('0', 80) AS pad FROM generate_series(1, 200000) g",
    "mariadb": "SELECT seq AS id, REPEAT('0', 80) AS pad FROM seq_1_to_200000",
}


def export(db: Db, query: str, **options: Any) -> DatabaseExport:
    return DatabaseExport(db.url, None, query, **options)


def events(db: Db, ids: range) -> str:
    table = db.table("events")
    db.run(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(40))")
    add_events(db, table, ids)
    return table


def add_events(db: Db, table: str, ids: range) -> None:
    if ids:
        db.insert(table, [{"id": i, "name": f"event {i}"} for i in ids])


def ids(records: list[SourceRecord]) -> list[int]:
    return [r.data["id"] for r in records if r.data is not None]


def test_rows_become_records_with_positions_and_refs(db: Db) -> None:
    table = events(db, range(1, 6))
    records = list(export(db, f"SELECT id, name FROM {table} ORDER BY id").records())
    assert [(r.position, r.ref) for r in records] == [(i, f"row {i + 1}") for i in range(5)]
    assert records[0].data == {"id": 1, "name": "event 1"}
    assert records[0].cursor is None and records[0].error is None


def test_start_position_skips_rows_without_cursor(db: Db) -> None:
    table = events(db, range(1, 8))
    records = list(export(db, f"SELECT id FROM {table} ORDER BY id DESC").records(4))
    assert [(r.position, r.data) for r in records] == [(4, {"id": 3}), (5, {"id": 2}),
                                                      (6, {"id": 1})]


def test_literal_percent_colon_and_semicolon_in_the_query(db: Db) -> None:
    table = events(db, range(1, 4))
    query = (f"SELECT id, 'a:b %' AS note FROM {table} WHERE name LIKE 'event %' "
             "AND name <> ':name' ORDER BY id;")
    records = list(export(db, query).records())
    assert records[0].data == {"id": 1, "note": "a:b %"}
    assert len(records) == 3
    assert ids(list(export(db, query, cursor_column="id").records())) == [1, 2, 3]


def test_duplicate_column_names_are_made_unique(db: Db) -> None:
    table = events(db, range(1, 2))
    records = list(export(db, f"SELECT id, name, id FROM {table}").records())
    assert records[0].data == {"id": 1, "name": "event 1", "id_2": 1}


def test_types_are_converted(db: Db) -> None:
    table = db.table("typed")
    blob = {"sqlite": "BLOB", "postgresql": "BYTEA", "mariadb": "BLOB"}[db.kind]
    db.run(f"CREATE TABLE {table} (id INTEGER, price NUMERIC(10, 2), big NUMERIC(20, 0), "
           f"ratio FLOAT, at {TS[db.kind]}, day DATE, data {blob}, flag BOOLEAN, "
           "empty VARCHAR(10))")
    at = datetime(2024, 5, 1, 10, 30, 15, 250000, tzinfo=UTC)
    db.insert(table, [{"id": 1, "price": "12.50", "big": "12345678901234567890", "ratio": 0.25,
                       "at": at if db.kind != "sqlite" else at.isoformat(),
                       "day": date(2024, 5, 1) if db.kind != "sqlite" else "2024-05-01",
                       "data": b"\x00\xffbytes", "flag": True, "empty": None}])
    [record] = list(export(db, f"SELECT * FROM {table}").records())
    data = record.data
    assert data is not None
    assert data["price"] == 12.5 and isinstance(data["price"], float)
    # SQLite keeps integers beyond 64 bits as REAL
    assert data["big"] == (1.2345678901234567e19 if db.kind == "sqlite" else 12345678901234567890)
    assert data["ratio"] == 0.25
    assert data["data"] == base64.b64encode(b"\x00\xffbytes").decode()
    assert data["empty"] is None
    assert data["day"] == "2024-05-01"
    expected_at = {"sqlite": at.isoformat(), "postgresql": "2024-05-01T10:30:15.250000+00:00",
                   "mariadb": "2024-05-01T10:30:15.250000"}[db.kind]
    assert data["at"] == expected_at
    assert data["flag"] in (True, 1)


def test_memory_stays_flat_over_200k_rows(db: Db) -> None:
    source = export(db, ROWS_200K[db.kind], fetch_size=1000)
    count = 0
    tracemalloc.start()
    try:
        for record in source.records():
            count += 1
            last = record
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert last.data == {"id": 200_000, "pad": "0" * 80}
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_postgresql_reads_through_a_named_cursor_with_the_fetch_size(postgres: Db) -> None:
    source = export(postgres, ROWS_200K["postgresql"], fetch_size=777)
    stream = source.records()
    for _ in range(3000):  # past the first fetches (SQLAlchemy starts small)
        next(stream)
    with postgres.admin.connect() as connection:
        running = connection.execute(sa.text(
            "SELECT query FROM pg_stat_activity WHERE application_name = 'segbridge' "
            "AND pid <> pg_backend_pid()")).scalars().all()
    stream.close()
    assert any(q.startswith("FETCH FORWARD 777 FROM") for q in running), running


def test_incremental_first_run_all_then_only_new_rows(db: Db) -> None:
    table = events(db, range(1, 6))
    query = f"SELECT * FROM {table}"
    first = export(db, query, cursor_column="id")
    assert first.bounds() == CursorBounds(None, 5)
    records = list(first.records())
    assert ids(records) == [1, 2, 3, 4, 5]
    assert [r.cursor for r in records] == [1, 2, 3, 4, 5]
    mark = next_cursor_value(first.bounds())
    add_events(db, table, range(6, 8))
    second = export(db, query, cursor_column="id", last_cursor=mark)
    records = list(second.records())
    assert ids(records) == [6, 7]
    assert [r.position for r in records] == [0, 1]
    third = export(db, query, cursor_column="id", last_cursor=next_cursor_value(second.bounds()))
    assert third.bounds() == CursorBounds(7, 7)
    assert list(third.records()) == []


def test_a_resumed_run_sees_the_same_rows(db: Db) -> None:
    table = events(db, range(1, 6))
    query = f"SELECT * FROM {table}"
    run = export(db, query, cursor_column="id")
    saved = run.bounds().to_json()  # the engine saves the bounds when the run starts
    stream = run.records()
    delivered = [next(stream), next(stream)]
    stream.close()  # the run is killed after two records
    add_events(db, table, range(6, 9))  # rows arrive meanwhile
    bounds = CursorBounds.from_json(saved)
    resumed = export(db, query, cursor_column="id", last_cursor=bounds.last,
                     upper_bound=bounds.upper)
    rest = list(resumed.records(start_position=2))
    assert ids(delivered) + ids(rest) == [1, 2, 3, 4, 5]
    assert [r.position for r in rest] == [2, 3, 4]


def test_a_failed_run_leaves_the_high_water_mark(db: Db) -> None:
    table = events(db, range(1, 4))
    query = f"SELECT * FROM {table}"
    saved_mark: Any = 3  # after a successful run
    add_events(db, table, range(4, 7))
    failing = export(db, query, cursor_column="id", last_cursor=saved_mark)
    with pytest.raises(RuntimeError):
        for record in failing.records():
            if record.data == {"id": 5, "name": "event 5"}:
                raise RuntimeError("the receiver is down")  # the run fails here
    # the engine saves next_cursor_value(bounds) only when a run succeeds: nothing changed
    retry = export(db, query, cursor_column="id", last_cursor=saved_mark)
    assert ids(list(retry.records())) == [4, 5, 6]
    assert next_cursor_value(retry.bounds()) == 6


def test_lag_leaves_out_rows_too_recent(db: Db) -> None:
    table = db.table("changes")
    db.run(f"CREATE TABLE {table} (id INTEGER, updated_at {TS[db.kind]})")
    now = NOW[db.kind]
    db.run(f"INSERT INTO {table} VALUES (1, {now.format(-7200)}), (2, {now.format(-3600)}), "
           f"(3, {now.format(-5)}), (4, {now.format(-1)})")
    query = f"SELECT id, updated_at FROM {table}"
    run = export(db, query, cursor_column="updated_at", lag_seconds=600)
    assert ids(list(run.records())) == [1, 2]
    bounds = run.bounds()
    assert bounds is not None and bounds.last is None
    round_trip = CursorBounds.from_json(bounds.to_json())
    assert round_trip == bounds
    no_lag = export(db, query, cursor_column="updated_at",
                    last_cursor=next_cursor_value(round_trip))
    assert ids(list(no_lag.records())) == [3, 4]


def test_lag_needs_a_time_cursor(db: Db) -> None:
    table = events(db, range(1, 3))
    with pytest.raises(ExportError, match="lag_seconds needs a date/time cursor column"):
        export(db, f"SELECT * FROM {table}", cursor_column="id", lag_seconds=60).bounds()


def test_nothing_to_export_on_an_empty_table(db: Db) -> None:
    table = events(db, range(0))
    run = export(db, f"SELECT * FROM {table}", cursor_column="id")
    assert list(run.records()) == []
    assert run.bounds() == CursorBounds(None, None)
    assert next_cursor_value(run.bounds()) is None


@pytest.mark.parametrize(("query", "named"), [
    ("SELEC id FROM nowhere", "SELEC"), ("SELECT id FROM missing_table_x", "missing_table_x")])
def test_a_failing_query_is_a_clear_export_error(db: Db, query: str, named: str) -> None:
    with pytest.raises(ExportError) as caught:
        list(export(db, query).records())
    assert caught.value.cause == "query"
    assert caught.value.message.startswith("The query failed: ")
    assert named in caught.value.message  # the database's own words name what is wrong


def test_an_unknown_cursor_column_fails_the_run(db: Db) -> None:
    table = events(db, range(1, 3))
    query = f"SELECT * FROM {table}"
    with pytest.raises(ExportError, match="The query has no column updated; its columns are "
                                          "id, name"):
        export(db, query, cursor_column="updated").bounds()
    with pytest.raises(ExportError, match="The query has no column updated"):
        list(export(db, query, cursor_column="updated", upper_bound=2).records())


def test_the_cursor_column_is_matched_without_case(db: Db) -> None:
    table = events(db, range(1, 3))
    source = export(db, f"SELECT * FROM {table}", cursor_column="ID")
    assert source.bounds() == CursorBounds(None, 2)
    assert [r.cursor for r in source.records()] == [1, 2]


@pytest.mark.parametrize("column", ["id; DROP TABLE x", 'id"', "a b", "1id", ""])
def test_the_cursor_column_must_be_a_plain_name(column: str) -> None:
    with pytest.raises(ExportError, match="not a plain column name"):
        DatabaseExport("sqlite:////tmp/x.db", None, "SELECT 1", cursor_column=column)


def test_an_unreachable_database_is_retriable(free_port: int) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port}/test"
    with pytest.raises(ExportUnavailable) as caught:
        list(DatabaseExport(url, None, "SELECT 1").records())
    assert caught.value.cause == "refused"


def test_an_engine_can_be_given(db: Db) -> None:
    table = events(db, range(1, 4))
    source = DatabaseExport(db.admin, None, f"SELECT id FROM {table}", cursor_column="id")
    assert ids(list(source.records(1))) == [2, 3]
    with db.admin.connect() as connection:  # the engine is still usable
        assert connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar() == 3


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)  # MariaDB: no
def test_the_export_cannot_write(db: Db) -> None:  # SELECT can write there
    table = events(db, range(1, 3))
    query = (f"DELETE FROM {table} RETURNING id" if db.kind == "sqlite" else
             f"WITH gone AS (DELETE FROM {table} RETURNING id) SELECT * FROM gone")
    with pytest.raises(ExportError):
        list(export(db, query).records())
    with db.admin.connect() as connection:
        assert connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar() == 2


def test_decimal_cursor_bounds_round_trip() -> None:
    bounds = CursorBounds(Decimal("10.50"), datetime(2024, 1, 1, tzinfo=UTC))
    assert CursorBounds.from_json(bounds.to_json()) == bounds


def test_stopping_early_does_not_read_the_rest(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    big = {"sqlite": ROWS_200K["sqlite"].replace("200000", "3000000"),
           "postgresql": ROWS_200K["postgresql"].replace("200000", "3000000"),
           "mariadb": "SELECT seq AS id, REPEAT('0', 80) AS pad FROM seq_1_to_3000000"}
    stream = export(db, big[db.kind], fetch_size=1000).records()
    for _ in range(10):
        next(stream)
    started = time.perf_counter()
    for _ in range(100_000):  # what reading costs here and now (the machine may be loaded)
        next(stream)
    reading = time.perf_counter() - started
    started = time.perf_counter()
    stream.close()
    gc.collect()
    closing = time.perf_counter() - started
    # the 2.9M rows left would cost about 29 times ``reading``: closing is far below that
    # (an absolute second failed on a loaded machine)
    assert closing < max(2 * reading, 0.5), (closing, reading)
    assert unraisable == []

"""The Database application and export parts that need no server: URLs, settings, scrubbing,
diagnosis, value conversion, cursor values and SQL."""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from segbridge.apps.base import Capability, SettingKind
from segbridge.apps.database.app import DatabaseApplication
from segbridge.apps.database.connect import _sqlite_read_only, scrub
from segbridge.apps.database.convert import convert_row, convert_value
from segbridge.apps.database.cursor import (
    CursorBounds,
    cutoff,
    decode_cursor_value,
    encode_cursor_value,
    next_cursor_value,
    offset_clause,
    range_sql,
)
from segbridge.apps.database.diagnose import diagnose
from segbridge.apps.database.export import DatabaseExport, clean_query
from segbridge.apps.database.url import public_url, url_problems, with_password
from segbridge.apps.files.export import file_export
from segbridge.core.secrets import Secret
from segbridge.exports.errors import ExportError

APP = DatabaseApplication()
PASSWORD = "pa ss/w%rd@1"


def test_the_application_entry() -> None:
    assert APP.key == "database"
    assert APP.capabilities == {Capability.PING, Capability.EXPORT, Capability.LOOKUP}
    specs = {spec.name: spec for spec in APP.settings}
    assert specs["url"].kind is SettingKind.TEXT and specs["url"].required
    assert specs["password"].secret and not specs["password"].required


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://app@db.example:5432/shop",
    "postgresql+psycopg://app@db.example/shop?sslmode=require",
    "mysql+pymysql://app@db.example/shop",
    "sqlite:////srv/data/shop.db",
])
def test_good_urls(url: str) -> None:
    assert APP.validate({"url": url}) == []


@pytest.mark.parametrize(("url", "message"), [
    (None, "Enter the database URL"),
    ("   ", "Enter the database URL"),
    ("not a url", "This is not a database URL"),
    ("postgresql://app@db/shop", "For PostgreSQL write postgresql+psycopg://"),
    ("mysql://app@db/shop", "For MySQL or MariaDB write mysql+pymysql://"),
    ("mssql+pyodbc://app@db/shop", "The driver 'mssql+pyodbc' is not supported"),
    (f"postgresql+psycopg://app:{PASSWORD.replace('/', '%2F')}@db/shop", "Password field"),
    ("mysql+pymysql://app@db/shop?password=x", "Password field"),
    ("sqlite:///relative.db", "Use an absolute path"),
    ("sqlite://", "Give the path of the SQLite file"),
    ("sqlite:///:memory:", "Give the path of the SQLite file"),
])
def test_bad_urls(url: str | None, message: str) -> None:
    problems = APP.validate({"url": url})
    assert problems and problems[0].field == "settings.url"
    assert message in problems[0].message
    assert "pa ss" not in problems[0].message


def test_a_url_with_a_password_is_never_echoed() -> None:
    for problem in url_problems("postgresql+psycopg://app:hunter2@db/shop"):
        assert "hunter2" not in problem
    assert public_url("postgresql+psycopg://app:hunter2@db/shop") == \
        "postgresql+psycopg://app:***@db/shop"
    assert public_url("::::") == "(not a database URL)"


def test_the_password_is_injected_only_to_connect() -> None:
    url = make_url("postgresql+psycopg://app@db/shop")
    connect = with_password(url, Secret(PASSWORD))
    assert connect.password == PASSWORD
    assert PASSWORD not in repr(connect) and PASSWORD not in str(connect)
    assert with_password(url, None) is url and with_password(url, Secret("")) is url
    sqlite = make_url("sqlite:////srv/shop.db")
    assert with_password(sqlite, Secret(PASSWORD)) is sqlite


def test_sqlite_is_opened_read_only() -> None:
    url = _sqlite_read_only(make_url("sqlite:////srv/my data/shop.db"))
    assert url.database == "file:/srv/my%20data/shop.db"
    assert dict(url.query) == {"mode": "ro", "uri": "true"}


def test_scrub_masks_every_form_of_the_password() -> None:
    text = f"a {PASSWORD} b pa%20ss%2Fw%25rd%401 c pa+ss%2Fw%25rd%401"
    assert scrub(text, Secret(PASSWORD)) == "a ******** b ******** c ********"
    assert scrub("nothing", None) == "nothing"


class FakePgError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def wrapped(orig: BaseException) -> OperationalError:
    return OperationalError("SELECT 1", {}, orig)


PG = make_url("postgresql+psycopg://app@db.example:5432/shop")


@pytest.mark.parametrize(("orig", "cause"), [
    (FakePgError("x", "28P01"), "auth"),
    (FakePgError('FATAL: role "x" does not exist'), "auth"),
    (FakePgError('FATAL: database "shop" does not exist'), "unknown_database"),
    (FakePgError('could not translate host name "db.example" to address'), "dns"),
    (socket.gaierror(-2, "Name or service not known"), "dns"),
    (FakePgError("connection failed: Connection refused"), "refused"),
    (FakePgError("connection failed: timeout expired"), "timeout"),
    (FakePgError("canceling statement", "57014"), "timeout"),
    (FakePgError("server closed the connection unexpectedly"), "connection_lost"),
    (FakePgError("something odd"), "driver"),
])
def test_diagnosis_causes(orig: BaseException, cause: str) -> None:
    found = diagnose(wrapped(orig), PG, None, timeout=5)
    assert found.cause == cause
    assert found.message


def test_diagnosis_messages_are_scrubbed() -> None:
    found = diagnose(wrapped(FakePgError(f"bad thing near {PASSWORD}")), PG, Secret(PASSWORD))
    assert PASSWORD not in found.message and "********" in found.message
    assert found.message.startswith("The database driver reported an error: ")


def test_diagnosis_of_mysql_codes() -> None:
    import pymysql

    denied = pymysql.err.OperationalError(1045, "Access denied for user 'app'@'x'")
    unknown = pymysql.err.OperationalError(1049, "Unknown database 'shop'")
    url = make_url("mysql+pymysql://app@db.example/shop")
    assert diagnose(wrapped(denied), url, None).cause == "auth"
    found = diagnose(wrapped(unknown), url, None)
    assert found.cause == "unknown_database"
    assert found.detail == "Unknown database 'shop' (error 1049)"


@pytest.mark.parametrize(("value", "expected"), [
    (Decimal("12.50"), 12.5),
    (Decimal("12345678901234567890"), 12345678901234567890),
    (Decimal("1E+2"), 100),
    (Decimal("NaN"), None),
    (float("inf"), None),
    (0.25, 0.25),
    (datetime(2024, 5, 1, 10, 0, tzinfo=UTC), "2024-05-01T10:00:00+00:00"),
    (datetime(2024, 5, 1, 10, 0, 0, 5), "2024-05-01T10:00:00.000005"),
    (date(2024, 5, 1), "2024-05-01"),
    (time(10, 30), "10:30:00"),
    (timedelta(minutes=2), 120.0),
    (b"\x00\xff", "AP8="),
    (memoryview(b"ab"), "YWI="),
    (UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
    ({"a": [Decimal("1.5"), None]}, {"a": [1.5, None]}),
    (True, True),
])
def test_value_conversion(value: Any, expected: Any) -> None:
    assert convert_value(value) == expected
    assert type(convert_value(value)) is type(expected)


def test_row_conversion() -> None:
    assert convert_row(["a", "b", "c"], (1, "x", Decimal("2.5"))) == {"a": 1, "b": "x", "c": 2.5}


@pytest.mark.parametrize("value", [None, 5, 2.5, "2024-01-01 10:00:00", Decimal("10.50"),
                                   datetime(2024, 1, 1, 10, tzinfo=UTC),
                                   datetime(2024, 1, 1, 10, 0, 0, 123), date(2024, 1, 1),
                                   time(10, 30)])
def test_cursor_values_survive_json(value: Any) -> None:
    import json

    encoded = json.loads(json.dumps(encode_cursor_value(value)))
    decoded = decode_cursor_value(encoded)
    assert decoded == value and type(decoded) is type(value)


def test_cursor_bounds() -> None:
    assert next_cursor_value(CursorBounds(3, 9)) == 9
    assert next_cursor_value(CursorBounds(3, None)) == 3
    assert CursorBounds(3, 3).empty and CursorBounds(None, None).empty
    assert not CursorBounds(None, 1).empty
    with pytest.raises(ExportError, match="reset the flow's cursor"):
        decode_cursor_value({"type": "nope", "value": 1})


def test_queries_are_cleaned_for_text() -> None:
    # text() would take ":x" for a parameter, even inside quotes: escaped, it stays literal
    assert clean_query(" SELECT ':x', a::text FROM t WHERE b = :y ;; ") == \
        "SELECT '\\:x', a::text FROM t WHERE b = \\:y"
    with pytest.raises(ExportError, match="Write the SELECT query"):
        clean_query("  ")


def test_incremental_sql() -> None:
    sql = range_sql("SELECT * FROM t -- comment", '"updated_at"',
                    ['"updated_at" > :last', '"updated_at" <= :upper'], "postgresql", 10)
    assert sql == ('SELECT * FROM (\nSELECT * FROM t -- comment\n) AS segbridge_q WHERE '
                   '"updated_at" > :last AND "updated_at" <= :upper ORDER BY "updated_at" '
                   "OFFSET 10")
    assert offset_clause("mysql", 5) == " LIMIT 18446744073709551615 OFFSET 5"
    assert offset_clause("sqlite", 5) == " LIMIT -1 OFFSET 5"
    assert offset_clause("postgresql", 0) == ""
    assert cutoff("mysql", "`at`", 60) == "`at` <= CURRENT_TIMESTAMP - INTERVAL 60 SECOND"


@pytest.mark.parametrize(("options", "message"), [
    ({"lag_seconds": -1}, "lag_seconds is a whole number"),
    ({"cursor_column": "a-b"}, "not a plain column name"),
])
def test_export_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        DatabaseExport("sqlite:////srv/x.db", None, "SELECT 1", **options)


def test_export_urls_are_checked_and_never_shown_with_a_password() -> None:
    with pytest.raises(ExportError, match="Password field") as caught:
        DatabaseExport("postgresql+psycopg://app:hunter2@db/shop", None, "SELECT 1")
    assert "hunter2" not in str(caught.value)
    source = DatabaseExport("postgresql+psycopg://app@db/shop", Secret("hunter2"), "SELECT 1",
                            cursor_column="id")
    assert repr(source) == "DatabaseExport('postgresql+psycopg://app@db/shop', " \
                           "cursor_column='id')"
    assert "hunter2" not in repr(vars(source))


def test_file_export_factory(tmp_path: Any) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a;b\n1;2\n")
    [record] = list(file_export("csv", path, {"delimiter": ";"}).records())
    assert record.data == {"a": "1", "b": "2"}
    with pytest.raises(ExportError, match="Unknown option"):
        file_export("ndjson", path, {"delimiter": ";"})
    with pytest.raises(ExportError, match="Unknown file type"):
        file_export("xml", path)

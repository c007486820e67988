"""Timestamps: formats, time zones, output in UTC, wrong values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from .helpers import call, mapping_error, problems


def stamp(timestamp: Any, value: Any) -> str:
    spec = {"userId": "id", "event": {"constant": "x"}, "timestamp": timestamp}
    return call("track", spec, {"id": 1, "at": value})["timestamp"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-05-01T12:34:56Z", "2024-05-01T12:34:56.000Z"),
    ("2024-05-01T12:34:56.789Z", "2024-05-01T12:34:56.789Z"),
    ("2024-05-01T14:34:56+02:00", "2024-05-01T12:34:56.000Z"),
    ("2024-05-01T14:34:56.123456+02:00", "2024-05-01T12:34:56.123Z"),
    ("2024-05-01 12:34:56", "2024-05-01T12:34:56.000Z"),
    ("2024-05-01", "2024-05-01T00:00:00.000Z"),
    (" 2024-05-01T12:34:56Z ", "2024-05-01T12:34:56.000Z"),
])
def test_iso_is_the_default_and_output_is_utc(value: str, expected: str) -> None:
    assert stamp("at", value) == expected


def test_naive_values_are_in_the_time_zone() -> None:
    spec = {"field": "at", "timezone": "Europe/Paris"}
    assert stamp(spec, "2024-01-15T09:00:00") == "2024-01-15T08:00:00.000Z"  # winter, +01:00
    assert stamp(spec, "2024-07-15T09:00:00") == "2024-07-15T07:00:00.000Z"  # summer, +02:00
    assert stamp(spec, "2024-07-15T09:00:00-04:00") == "2024-07-15T13:00:00.000Z"  # has offset


def test_strftime_format_with_time_zone() -> None:
    spec = {"field": "at", "format": "%Y-%m-%d %H:%M:%S", "timezone": "Europe/Paris"}
    assert stamp(spec, "2024-05-01 12:00:00") == "2024-05-01T10:00:00.000Z"
    assert stamp({"field": "at", "format": "%d/%m/%Y %H:%M %z"}, "01/05/2024 12:00 +0530") == \
        "2024-05-01T06:30:00.000Z"


@pytest.mark.parametrize(("fmt", "value", "expected"), [
    ("unix", 1714566896, "2024-05-01T12:34:56.000Z"),
    ("unix", "1714566896", "2024-05-01T12:34:56.000Z"),
    ("unix", 1714566896.5, "2024-05-01T12:34:56.500Z"),
    ("unix_ms", 1714566896789, "2024-05-01T12:34:56.789Z"),
    ("unix_ms", "1714566896789", "2024-05-01T12:34:56.789Z"),
    ("unix", -86400, "1969-12-31T00:00:00.000Z"),
])
def test_unix_seconds_and_milliseconds(fmt: str, value: Any, expected: str) -> None:
    assert stamp({"field": "at", "format": fmt}, value) == expected


def test_datetime_and_date_objects_from_databases() -> None:
    aware = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert stamp("at", aware) == "2024-05-01T12:00:00.000Z"
    assert stamp({"field": "at", "timezone": "Europe/Paris"}, datetime(2024, 5, 1, 14, 0)) == \
        "2024-05-01T12:00:00.000Z"
    assert stamp("at", date(2024, 5, 1)) == "2024-05-01T00:00:00.000Z"
    assert stamp({"field": "at", "format": "unix"}, datetime(2024, 5, 1, tzinfo=UTC)) == \
        "2024-05-01T00:00:00.000Z"


def test_a_constant_timestamp_and_an_expression() -> None:
    assert stamp({"constant": "2024-05-01T14:00:00+02:00"}, None) == "2024-05-01T12:00:00.000Z"
    assert stamp({"expression": "concat(at, 'T10:00:00')"}, "2024-05-01") == \
        "2024-05-01T10:00:00.000Z"


def test_a_missing_timestamp_is_left_out_unless_required() -> None:
    spec = {"userId": "id", "event": {"constant": "x"}, "timestamp": "at"}
    assert "timestamp" not in call("track", spec, {"id": 1})
    assert stamp({"field": "at", "default": "2024-01-01"}, "") == "2024-01-01T00:00:00.000Z"
    spec["timestamp"] = {"field": "at", "required": True}
    assert str(mapping_error("track", spec, {"id": 1})) == \
        "timestamp: the field 'at' is missing or empty; fix the data or set a default"


def wrong(timestamp: Any, value: Any) -> str:
    spec = {"userId": "id", "event": {"constant": "x"}, "timestamp": timestamp}
    return str(mapping_error("track", spec, {"id": 1, "at": value}))


def test_wrong_values_say_why() -> None:
    assert wrong({"field": "at", "format": "%Y-%m-%d"}, "2024/13/01") == \
        "timestamp: '2024/13/01' does not match the format '%Y-%m-%d'"
    assert wrong({"field": "at", "format": "%Y-%m-%d"}, "2024-13-01") == \
        "timestamp: '2024-13-01' does not match the format '%Y-%m-%d'"
    assert wrong("at", "yesterday") == ("timestamp: 'yesterday' is not an ISO-8601 date and "
                                        "time (such as 2024-05-01T12:00:00Z): set format for "
                                        "other layouts")
    assert wrong("at", 1714566896) == ("timestamp: 1714566896 is a number, not an ISO-8601 "
                                       "date: set format unix (seconds) or unix_ms "
                                       "(milliseconds)")
    assert wrong({"field": "at", "format": "unix"}, "soon") == \
        "timestamp: 'soon' is not a number of seconds since 1970 (format unix)"
    assert wrong({"field": "at", "format": "unix"}, 1714566896789000) == \
        ("timestamp: 1714566896789000 is out of range for format unix; is it in milliseconds "
         "(format unix_ms)?")
    assert wrong({"field": "at", "format": "%Y"}, {"y": 1}) == \
        "timestamp: {\"y\":1} is an object, not text in the format '%Y'"


def test_timestamp_spec_problems() -> None:
    spec = {"userId": "id", "event": {"constant": "x"},
            "timestamp": {"field": "at", "format": "%Q-%5d", "timezone": "Mars/Olympus",
                          "unit": "s"}}
    assert problems("track", spec) == [
        ("mapping.timestamp.unit", "unknown key; use field, constant, expression, required, "
                                   "default, format, timezone"),
        ("mapping.timestamp.format", "'%Q-%5d' has a directive segbridge does not accept: use "
                                     "%Y, %m, %d, %H, %M, %S, %f, %z... without widths or "
                                     "flags"),
        ("mapping.timestamp.timezone", "unknown time zone 'Mars/Olympus': use an IANA name "
                                       "such as Europe/Paris or America/New_York")]


def test_more_timestamp_spec_problems() -> None:
    base = {"userId": "id", "event": {"constant": "x"}}
    assert problems("track", {**base, "timestamp": {"field": "at", "format": "yyyy-mm-dd"}}) \
        == [("mapping.timestamp.format", "'yyyy-mm-dd' is not a format: use iso, unix, unix_ms "
                                         "or a strftime pattern such as %Y-%m-%d %H:%M:%S")]
    assert problems("track", {**base, "timestamp": {"field": "at", "format": "%Q"}})[0][1] \
        .startswith("'%Q' cannot be read back:")
    assert problems("track", {**base, "timestamp": {"field": "at", "format": "unix",
                                                    "timezone": "Europe/Paris"}}) == [
        ("mapping.timestamp.timezone", "unix times are in UTC already: remove timezone")]
    assert problems("track", {**base, "timestamp": {"constant": "someday"}}) == [
        ("mapping.timestamp.constant", "'someday' is not an ISO-8601 date and time (such as "
                                       "2024-05-01T12:00:00Z): set format for other layouts")]

"""A UTC time written with "+00:00" (as Python, a Parquet file or a database driver writes
it) becomes the same ISO text as through a datetime, without one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segbridge.mapping.timestamps import converter, iso_utc


@pytest.mark.parametrize("value", [
    "2026-11-28T10:00:00+00:00",
    "2026-11-28T10:00:00.123456+00:00",
    "2026-11-28T10:00:00.000000+00:00",
    "2026-11-28T10:00:00.000999+00:00",
    "0999-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59.999999+00:00",
    "2026-11-28 10:00:00+00:00",  # (a space: the general path)
    "2026-11-28T10:00:00.5+00:00",
])
def test_utc_offset_text_converts_as_through_a_datetime(value: str) -> None:
    assert converter("iso", None)(value) == iso_utc(datetime.fromisoformat(value))


def test_many_utc_times_convert_as_through_a_datetime() -> None:
    convert = converter("iso", None)
    moment = datetime(1901, 1, 1, tzinfo=UTC)
    for step in range(2000):
        moment += timedelta(days=step % 97, seconds=step * 7919, microseconds=step * 131)
        value = moment.isoformat()
        assert convert(value) == iso_utc(moment), value

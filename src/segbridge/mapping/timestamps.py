"""Timestamps: read a value in a declared format and time zone, emit ISO-8601 in UTC.

Formats: "iso" (ISO-8601, the default), "unix" (seconds since 1970), "unix_ms"
(milliseconds) or a strftime pattern ("%Y-%m-%d %H:%M:%S"). A time zone (IANA name) applies
to values without an offset; without one they are UTC. Output is always
``YYYY-MM-DDTHH:MM:SS.mmmZ``. Datetime and date objects (database exports) are accepted in
any format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from segbridge.core.errors import RecordError
from segbridge.mapping.values import kind_of, quote

NAMED_FORMATS: Final = ("iso", "unix", "unix_ms")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DIRECTIVE = re.compile(r"%(-?[A-Za-z]|%)|%")
_SAMPLE = datetime(2024, 11, 28, 13, 45, 30, 123000, tzinfo=UTC)


class TimestampError(RecordError, ValueError):
    """A value is not a date and time in the declared format (or a time zone is unknown); the
    message says why. A ``RecordError`` (one record's value), and a ``ValueError``."""


def format_problem(fmt: Any, *, for_reading: bool = True) -> str | None:
    """Why ``fmt`` is not a usable format (None when it is)."""
    if not isinstance(fmt, str) or not fmt:
        return "use iso, unix, unix_ms or a strftime pattern such as %Y-%m-%d %H:%M:%S"
    if fmt in NAMED_FORMATS:
        return None
    directives = _DIRECTIVE.findall(fmt)
    if not directives:
        return (f"'{fmt}' is not a format: use iso, unix, unix_ms or a strftime pattern "
                "such as %Y-%m-%d %H:%M:%S")
    if "" in directives:
        return (f"'{fmt}' has a directive segbridge does not accept: use %Y, %m, %d, %H, %M, "
                "%S, %f, %z... without widths or flags")
    if for_reading:
        try:
            datetime.strptime(_SAMPLE.strftime(fmt), fmt)
        except ValueError as exc:
            return f"'{fmt}' cannot be read back: {exc}"
    return None


@lru_cache(maxsize=256)
def zone_named(name: str) -> tzinfo:
    """The IANA time zone ``name``; raises TimestampError for an unknown name."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimestampError(f"unknown time zone '{name}': use an IANA name such as "
                             "Europe/Paris or America/New_York") from None


def zone_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return "use an IANA time zone name such as Europe/Paris"
    try:
        zone_named(name)
    except TimestampError as exc:
        return str(exc)
    return None


def iso_utc(moment: datetime) -> str:
    """``2024-05-01T10:00:00.000Z``; ``moment`` must be aware."""
    text = moment.astimezone(UTC).isoformat()
    return text[:23] + "Z" if moment.microsecond else text[:19] + ".000Z"


def to_datetime(value: Any, fmt: str, zone: tzinfo | None) -> datetime:
    """An aware datetime from ``value`` read in ``fmt``; naive values are in ``zone`` (UTC
    when None). Raises TimestampError with a message for people."""
    if isinstance(value, datetime):
        return _aware(value, zone)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone or UTC)
    if fmt == "iso":
        return _from_iso(value, zone)
    if fmt in ("unix", "unix_ms"):
        return _from_unix(value, fmt)
    if not isinstance(value, str):
        raise TimestampError(f"{quote(value)} is {kind_of(value)}, not text in the format "
                             f"'{fmt}'")
    try:
        return _aware(datetime.strptime(value.strip(), fmt), zone)
    except ValueError:
        raise TimestampError(f"{quote(value)} does not match the format '{fmt}'") from None


def converter(fmt: str, zone: tzinfo | None) -> Callable[[Any], str]:
    """A function turning values in ``fmt`` into ISO-8601 UTC text (raises TimestampError).
    For "iso", text already in the output shape is checked and returned as it is."""
    if fmt != "iso":
        return lambda value: iso_utc(to_datetime(value, fmt, zone))

    naive_zone = zone or UTC
    parse = datetime.fromisoformat

    def convert_iso(value: Any) -> str:
        if type(value) is not str:
            return iso_utc(to_datetime(value, "iso", zone))
        try:
            moment = parse(value)
        except ValueError:
            return iso_utc(to_datetime(value, "iso", zone))  # stripped, or a clear error
        if value[-1:] == "Z" and value[10:11] == "T":  # UTC already: keep the digits
            if len(value) == 24 and value[19] == ".":
                return value  # already in the output form
            if len(value) == 20:
                return value[:19] + ".000Z"  # whole seconds
        elif value[-6:] == "+00:00" and value[10:11] == "T":  # UTC as Python writes it
            # (a Parquet or database timestamp with zone): the same text, without a datetime
            digits = value[:-6]
            if len(digits) == 19:
                return digits + ".000Z"
            if len(digits) == 26 and digits[19] == ".":
                return digits[:23] + "Z"
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=naive_zone)
        text = moment.astimezone(UTC).isoformat()
        return text[:23] + "Z" if moment.microsecond else text[:19] + ".000Z"

    return convert_iso


def to_unix(moment: datetime, unit: str = "s") -> int | float:
    """Seconds (an int when whole) or milliseconds (an int) since 1970."""
    delta = moment - EPOCH
    if unit == "ms":
        return delta // timedelta(milliseconds=1)
    seconds = delta.total_seconds()
    return int(seconds) if seconds.is_integer() else seconds


def format_datetime(moment: datetime, fmt: str, zone: tzinfo | None) -> str | int | float:
    """``moment`` written in ``fmt`` ("iso", "unix", "unix_ms" or strftime) in ``zone``."""
    if fmt == "iso":
        return iso_utc(moment)
    if fmt in ("unix", "unix_ms"):
        return to_unix(moment, "ms" if fmt == "unix_ms" else "s")
    return moment.astimezone(zone or UTC).strftime(fmt)


def _aware(moment: datetime, zone: tzinfo | None) -> datetime:
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        return moment
    return moment.replace(tzinfo=zone or UTC)


def _from_iso(value: Any, zone: tzinfo | None) -> datetime:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        raise TimestampError(f"{quote(value)} is a number, not an ISO-8601 date: set format "
                             "unix (seconds) or unix_ms (milliseconds)")
    if not isinstance(value, str):
        raise TimestampError(f"{quote(value)} is {kind_of(value)}, not an ISO-8601 date")
    try:
        return _aware(datetime.fromisoformat(value.strip()), zone)
    except ValueError:
        raise TimestampError(f"{quote(value)} is not an ISO-8601 date and time (such as "
                             "2024-05-01T12:00:00Z): set format for other layouts") from None


def _from_unix(value: Any, fmt: str) -> datetime:
    unit = "milliseconds" if fmt == "unix_ms" else "seconds"
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise TimestampError(f"{quote(value)} is {kind_of(value)}, not a number of {unit} "
                             "since 1970")
    try:
        number = float(value) if isinstance(value, str | Decimal) else value
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError
        delta = timedelta(milliseconds=number) if fmt == "unix_ms" \
            else timedelta(seconds=number)
        return EPOCH + delta
    except ValueError:
        raise TimestampError(f"{quote(value)} is not a number of {unit} since 1970 "
                             f"(format {fmt})") from None
    except OverflowError:
        hint = "; is it in milliseconds (format unix_ms)?" if fmt == "unix" else ""
        raise TimestampError(f"{quote(value)} is out of range for format {fmt}{hint}") from None

"""Parquet (Arrow) values to JSON-friendly record values, one column at a time.

A converter is chosen once per column from its Arrow type, so a plain column (integers,
strings, booleans) is taken as Arrow gives it, and only the others are walked; timestamp and
date columns are written as texts by Arrow for the whole column (``iso_texts``: a Python
datetime with a zone costs about 7 us a value), value by value only where Arrow's text could
differ from Python's, and decimals become ints and floats without a Decimal per value
(``decimal_values``):

    int, string, bool, null   -> unchanged
    float                     -> float; NaN and infinities -> None (as the Database app)
    decimal                   -> int when integral, else float (as the Database app)
    timestamp with a zone     -> ISO 8601 with its offset ("2024-05-01T12:00:00+02:00")
    timestamp without a zone  -> ISO 8601 without an offset (naive stays naive)
    timestamp in nanoseconds  -> cut to microseconds (what a JSON date string carries)
    date, time                -> ISO 8601 string
    duration                  -> seconds (float)
    binary                    -> base64 string (standard alphabet, padded)
    list                      -> list, each item converted
    struct                    -> object, each field converted
    map                       -> object (keys as strings; a repeated key keeps its last value)
    dictionary (categorical)  -> its values, converted
    anything else             -> str(value)
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from segbridge.apps.database.convert import convert_value

if TYPE_CHECKING:
    import pyarrow as pa

Convert = Callable[[Any], Any]
# the last year whose texts Arrow writes as Python does, with a zone and without: after 2037
# Arrow's time zone rules stop at the system's last listed change (no daylight saving time)
LAST_YEAR = {False: 2037, True: 9999}
MINUTE = 60_000_000  # microseconds
INT64_DIGITS = 18  # a decimal's whole part this long is an int64 (decimal_values)


def column_values(column: pa.Array) -> list[Any]:
    """The column's values as JSON-friendly Python values, in row order."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_timestamp(kind):
        column = column.cast(pa.timestamp("us", tz=kind.tz), safe=False)  # ns: cut
        texts = iso_texts(column)
        if texts is not None:
            return texts
    elif pa.types.is_date(kind):
        texts = iso_dates(column)
        if texts is not None:
            return texts
    elif pa.types.is_decimal(kind) and kind.precision - kind.scale <= INT64_DIGITS:
        return decimal_values(column)
    convert = converter(column.type)
    values: list[Any] = column.to_pylist()
    if convert is None:
        return values
    return [None if value is None else convert(value) for value in values]


def iso_texts(column: pa.TimestampArray) -> list[Any] | None:
    """A timestamp column (in microseconds) as ISO 8601 texts made by Arrow for the whole
    column, as ``datetime.isoformat()`` writes each (the fraction only when it is not zero,
    the zone's offset as +HH:MM): a Python datetime with a zone costs about 7 us a value to
    make, these texts well under 1 us. None when Arrow's text could differ from Python's, so
    the caller converts value by value: a year before 1900, after 9999 or (with a zone)
    after 2037, or an offset that is not a whole number of minutes (local mean time)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count == len(column):
        return [None] * len(column)
    zoned = column.type.tz is not None
    years = pc.min_max(pc.year(column))
    if years["min"].as_py() < 1900 or years["max"].as_py() > LAST_YEAR[not zoned]:
        return None
    wall = pc.local_timestamp(column) if zoned else column  # the time on the zone's clocks
    texts = pc.replace_substring(wall.cast(pa.string()), pattern=" ", replacement="T",
                                 max_replacements=1)  # "2024-05-01 12:00:00.000000"
    texts = pc.replace_substring(texts, pattern=".000000", replacement="")
    if zoned:
        offsets = _offset_texts(column, wall)
        if offsets is None:
            return None
        texts = pc.binary_join_element_wise(texts, offsets, pa.scalar(""))
    values: list[Any] = texts.to_pylist()
    return values


def iso_dates(column: pa.Array) -> list[Any] | None:
    """A date column as ISO 8601 texts made by Arrow ("2024-02-29", as ``date.isoformat()``
    writes them); None for a year before 1000 (Arrow does not pad it to four digits)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count == len(column):
        return [None] * len(column)
    if pc.min(pc.year(column)).as_py() < 1000:
        return None
    values: list[Any] = column.cast(pa.string()).to_pylist()
    return values


def decimal_values(column: pa.Array) -> list[Any]:
    """A decimal column whose whole part fits in 18 digits, as the Database app converts each
    value (an int when integral, else the nearest float), without a Python Decimal per
    value: Arrow finds the integral ones and their ints, and writes the others as texts,
    which float() reads exactly as it would read the Decimal."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.type.scale == 0:
        ints: list[Any] = column.cast(pa.int64()).to_pylist()
        return ints
    whole = pc.floor(column)
    integral = pc.equal(whole, column).to_pylist()
    return [number if is_integral else None if text is None else float(text)
            for number, is_integral, text in zip(whole.cast(pa.int64()).to_pylist(), integral,
                                                  column.cast(pa.string()).to_pylist(),
                                                  strict=True)]


def _offset_texts(column: pa.TimestampArray, wall: pa.TimestampArray) -> pa.Array | None:
    """Each value's offset from UTC as +HH:MM (a zone has few: each is written once); None
    when one is not a whole number of minutes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets = pc.subtract(wall.cast(pa.int64()), column.cast(pa.int64()))  # microseconds
    distinct = pc.unique(offsets)
    texts = []
    for offset in distinct.to_pylist():
        if offset is not None and offset % MINUTE:
            return None
        texts.append(None if offset is None else _offset_text(offset // MINUTE))
    return pc.take(pa.array(texts, pa.string()), pc.index_in(offsets, value_set=distinct))


def _offset_text(minutes: int) -> str:
    hours, rest = divmod(abs(minutes), 60)
    return f"{'-' if minutes < 0 else '+'}{hours:02d}:{rest:02d}"


def converter(kind: pa.DataType) -> Convert | None:
    """How to convert one value of ``kind`` (None: Arrow's Python value is already right)."""
    import pyarrow as pa

    types = pa.types
    if types.is_integer(kind) or types.is_string(kind) or types.is_large_string(kind) or \
            types.is_boolean(kind) or types.is_null(kind):
        return None
    if types.is_dictionary(kind):
        return converter(kind.value_type)
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        return _list_of(converter(kind.value_type))
    if types.is_map(kind):
        return _map_of(converter(kind.key_type), converter(kind.item_type))
    if types.is_struct(kind):
        return _struct_of({kind.field(i).name: converter(kind.field(i).type)
                           for i in range(kind.num_fields)})
    if types.is_binary(kind) or types.is_large_binary(kind) or types.is_fixed_size_binary(kind):
        return _base64
    if types.is_floating(kind):
        return _finite
    return _scalar


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _scalar(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return convert_value(value)


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _list_of(item: Convert | None) -> Convert:
    if item is None:
        return list
    return lambda values: [None if value is None else item(value) for value in values]


def _map_of(key: Convert | None, item: Convert | None) -> Convert:
    def convert(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
        return {str(k if key is None else key(k)):
                v if v is None or item is None else item(v) for k, v in pairs}

    return convert


def _struct_of(fields: dict[str, Convert | None]) -> Convert:
    def convert(value: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, item in value.items():
            field_convert = fields.get(name)
            result[name] = item if item is None or field_convert is None \
                else field_convert(item)
        return result

    return convert

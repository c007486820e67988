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
    nanoseconds               -> cut to microseconds, toward the past (what a JSON date string
                                 carries): timestamps, times and durations, nested ones too
    date, time                -> ISO 8601 string
    duration                  -> seconds (float)
    binary                    -> base64 string (standard alphabet, padded)
    list                      -> list, each item converted
    struct                    -> object, each field converted
    map                       -> object (keys as strings; a repeated key keeps its last value)
    dictionary (categorical)  -> its values, converted
    anything else             -> str(value)

A timestamp column's value whose date on its zone's clocks is past the year 9999 or before
the year 1 (a "9999-12-31 23:59:59 UTC" sentinel in a Paris column) is written in UTC, the
same instant ("9999-12-31T23:59:59+00:00"). A value no Python date can hold even so (a naive
timestamp in the year 20000; such a timestamp in a list or struct) has no JSON value: its row
is returned with why, and its record becomes an error naming the field; the file's other
records go on.
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
DECIMAL128_DIGITS = 38
DECIMAL256_DIGITS = 76

Problems = dict[int, str]  # by row index: why the value has no JSON value


def column_values(column: pa.Array) -> tuple[list[Any], Problems]:
    """The column's values as JSON-friendly Python values, in row order, and the rows whose
    value has none (usually none: a date past the year 9999), each with why."""
    import pyarrow as pa

    kind = column.type
    if _is_nanoseconds(kind):
        column = floored_to_microseconds(column)
    elif pa.types.is_timestamp(kind) and kind.unit != "us":
        column = column.cast(pa.timestamp("us", tz=kind.tz), safe=False)  # s, ms: exact
    kind = column.type  # microseconds, for a timestamp, time or duration in nanoseconds
    if pa.types.is_timestamp(kind):
        texts = iso_texts(column)
        if texts is not None:
            return texts, {}
    elif pa.types.is_date(kind):
        texts = iso_dates(column)
        if texts is not None:
            return texts, {}
    elif pa.types.is_decimal(kind) and kind.precision - kind.scale <= INT64_DIGITS \
            and kind.precision < DECIMAL256_DIGITS:
        return decimal_values(column), {}
    ints = _nanoseconds_as_ints(kind)
    if ints is not None:  # nested nanoseconds: read as ints, cut by their converter
        column = column.cast(ints)
    convert = converter(kind)
    try:
        values: list[Any] = column.to_pylist()
        if convert is None:
            return values, {}
        return [None if value is None else convert(value) for value in values], {}
    except OverflowError:  # a date Python cannot hold: the values one by one
        if pa.types.is_timestamp(kind):
            return _one_by_one(column, _timestamp_text)
        return _one_by_one(column, lambda item: _converted(item.as_py(), convert))


def floored_to_microseconds(column: pa.Array) -> pa.Array:
    """A timestamp, time or duration column in nanoseconds cut to microseconds toward the past,
    as Python's ``//`` cuts (-1 ns is 1969-12-31T23:59:59.999999, not 1970-01-01): Arrow's own
    cast cuts toward zero."""
    import pyarrow as pa
    import pyarrow.compute as pc

    nanoseconds = column.cast(pa.int64())
    whole = pc.divide(nanoseconds, 1000)  # toward zero
    whole = pc.if_else(pc.less(nanoseconds, pc.multiply(whole, 1000)), pc.subtract(whole, 1),
                       whole)
    return whole.cast(_microseconds(column.type))


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

    kind = column.type
    if kind.scale == 0:
        ints: list[Any] = column.cast(pa.int64()).to_pylist()
        return ints
    if kind.precision < DECIMAL256_DIGITS:  # the floor of a negative value may need one more
        # whole digit than the type has (-0.5 in decimal(5, 5) -> -1; -9.5 in (2, 1) -> -10)
        wider = pa.decimal128 if kind.precision < DECIMAL128_DIGITS else pa.decimal256
        column = column.cast(wider(kind.precision + 1, kind.scale))
    whole = pc.floor(column)
    integral = pc.equal(whole, column).to_pylist()
    return [number if is_integral else None if text is None else float(text)
            for number, is_integral, text in zip(whole.cast(pa.int64()).to_pylist(), integral,
                                                  column.cast(pa.string()).to_pylist(),
                                                  strict=True)]


def _one_by_one(column: pa.Array,
                convert: Callable[[pa.Scalar], Any]) -> tuple[list[Any], Problems]:
    """Each value converted alone (``convert`` takes its Arrow scalar): one Python cannot
    hold becomes None, its row said in the problems."""
    values: list[Any] = []
    problems: Problems = {}
    for row in range(len(column)):
        item = column[row]
        try:
            values.append(convert(item))
        except OverflowError:
            values.append(None)
            problems[row] = _out_of_range(column, row)
    return values, problems


def _timestamp_text(item: pa.TimestampScalar) -> str | None:
    """One timestamp as ``datetime.isoformat()`` writes it; in UTC when its zone's clocks put
    it past the year 9999 or before the year 1, which no Python datetime holds."""
    import pyarrow as pa

    try:
        value = item.as_py()
    except OverflowError:
        if item.type.tz is None:
            raise
        value = item.cast(pa.timestamp(item.type.unit, tz="UTC")).as_py()
    return None if value is None else value.isoformat()


def _converted(value: Any, convert: Convert | None) -> Any:
    return value if value is None or convert is None else convert(value)


def _out_of_range(column: pa.Array, row: int) -> str:
    """Why a value has no JSON value, with Arrow's own text of it when it has one."""
    import pyarrow as pa

    try:
        text = column.slice(row, 1).cast(pa.string())[0].as_py()
    except (pa.ArrowException, OverflowError, ValueError):
        text = None
    shown = f" ({text})" if text else ""
    return (f"a date in it{shown} is outside the years 1 to 9999 that a date can hold; "
            "correct it in the file, or leave the column out with export.columns")


def _is_nanoseconds(kind: pa.DataType) -> bool:
    import pyarrow as pa

    types = pa.types
    temporal = types.is_timestamp(kind) or types.is_time64(kind) or types.is_duration(kind)
    return temporal and str(kind.unit) == "ns"


def _microseconds(kind: pa.DataType) -> pa.DataType:
    """The timestamp, time or duration type ``kind`` in microseconds."""
    import pyarrow as pa

    if pa.types.is_timestamp(kind):
        return pa.timestamp("us", tz=kind.tz)
    if pa.types.is_time64(kind):
        return pa.time64("us")
    return pa.duration("us")


def _nanoseconds_as_ints(kind: pa.DataType) -> pa.DataType | None:
    """``kind`` with each nanosecond type inside it as int64 (Python cannot hold a nanosecond
    that is not a whole microsecond), or None when it has none."""
    import pyarrow as pa

    types = pa.types
    if _is_nanoseconds(kind):
        return pa.int64()
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        item = _nanoseconds_as_ints(kind.value_type)
        if item is None:
            return None
        field = kind.value_field.with_type(item)
        if types.is_fixed_size_list(kind):
            return pa.list_(field, kind.list_size)
        return pa.large_list(field) if types.is_large_list(kind) else pa.list_(field)
    if types.is_map(kind):
        key, item = _nanoseconds_as_ints(kind.key_type), _nanoseconds_as_ints(kind.item_type)
        if key is None and item is None:
            return None
        return pa.map_(kind.key_field.with_type(key or kind.key_type),
                       kind.item_field.with_type(item or kind.item_type))
    if types.is_struct(kind):
        fields = [kind.field(i) for i in range(kind.num_fields)]
        inner = [_nanoseconds_as_ints(field.type) for field in fields]
        if all(item is None for item in inner):
            return None
        return pa.struct([field if item is None else field.with_type(item)
                          for field, item in zip(fields, inner, strict=True)])
    if types.is_dictionary(kind):
        item = _nanoseconds_as_ints(kind.value_type)
        return None if item is None else pa.dictionary(kind.index_type, item)
    return None


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
    if _is_nanoseconds(kind):  # read as ints (_nanoseconds_as_ints)
        return _from_nanoseconds(_microseconds(kind))
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


def _from_nanoseconds(micro: pa.DataType) -> Convert:
    """A nanosecond value read as its int, cut to microseconds toward the past."""
    import pyarrow as pa

    return lambda nanoseconds: _scalar(pa.scalar(nanoseconds // 1000, micro).as_py())


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

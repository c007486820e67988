"""Parquet (Arrow) values to JSON-friendly record values, one column at a time.

A converter is chosen once per column from its Arrow type, so a plain column (integers,
strings, booleans) is taken as Arrow gives it, and only the others are walked:

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


def column_values(column: pa.Array) -> list[Any]:
    """The column's values as JSON-friendly Python values, in row order."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_timestamp(kind) and kind.unit == "ns":
        column = column.cast(pa.timestamp("us", tz=kind.tz), safe=False)
    convert = converter(column.type)
    values: list[Any] = column.to_pylist()
    if convert is None:
        return values
    return [None if value is None else convert(value) for value in values]


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

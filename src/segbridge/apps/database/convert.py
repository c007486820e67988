"""Database values to JSON-friendly record values.

    Decimal       -> float; an integral Decimal -> int (exact: NUMERIC(20,0) ids survive);
                     NaN and infinities -> None
    float         -> float; NaN and infinities -> None
    datetime      -> ISO 8601 string ("2024-05-01T10:00:00+00:00"; naive stays naive)
    date, time    -> ISO 8601 string
    timedelta     -> seconds (float)
    bytes         -> base64 string (standard alphabet, padded)
    UUID, others  -> str(value)
    dict, list    -> converted item by item (PostgreSQL json, jsonb, arrays)
    str, int, bool, None -> unchanged
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

PLAIN = frozenset({str, int, bool, type(None)})


def convert_row(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    plain = PLAIN
    return {name: value if type(value) in plain else convert_value(value)
            for name, value in zip(names, row, strict=True)}


def convert_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, str | int | bool):  # subclasses (enums)
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(key): convert_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [convert_value(item) for item in value]
    return str(value)


def _decimal(value: Decimal) -> int | float | None:
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return int(value)
    return float(value)

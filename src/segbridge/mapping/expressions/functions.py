"""The functions an expression may call, by name (there is no other way to call anything).

Rule of thumb: functions pass null through (``lower(null)`` is null), except those made for
missing values (coalesce, if_empty, concat, len, join, contains, starts_with, ends_with).
Text built by a function is capped like the operators' (MAX_ITEMS characters).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any, Final

from segbridge.mapping.expressions.errors import ExpressionError
from segbridge.mapping.expressions.operators import NUMBERS, check_size
from segbridge.mapping.timestamps import (
    TimestampError,
    format_datetime,
    format_problem,
    iso_utc,
    to_datetime,
    to_unix,
    zone_named,
    zone_problem,
)
from segbridge.mapping.values import is_empty, kind_of, quote, text_of

Check = Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class Function:
    impl: Callable[..., Any]
    usage: str
    min_args: int
    max_args: int | None
    pure: bool = True
    """Computed once when every argument is a constant (``now`` is not pure)."""
    checks: tuple[tuple[int, Check], ...] = ()
    """Checks of arguments given as constants, run when the expression is compiled."""


def _text(value: Any, what: str = "text") -> str:
    if isinstance(value, dict | list | tuple):
        raise ExpressionError(f"expected {what}, got {kind_of(value)}")
    return text_of(value)


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExpressionError(f"{what} must be a whole number, not {kind_of(value)}")
    return value


def _number(value: Any, what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, NUMBERS):
        raise ExpressionError(f"{what} needs a number, not {kind_of(value)}")
    return value


def lower(value: Any) -> str | None:
    return None if value is None else _text(value).lower()


def upper(value: Any) -> str | None:
    return None if value is None else _text(value).upper()


def trim(value: Any) -> str | None:
    return None if value is None else _text(value).strip()


def concat(*parts: Any) -> str:
    texts = [_text(part) for part in parts]
    check_size(sum(map(len, texts)), "")
    return "".join(texts)


def coalesce(*values: Any) -> Any:
    return next((value for value in values if not is_empty(value)), None)


def if_empty(value: Any, default: Any) -> Any:
    return default if is_empty(value) else value


def length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str | list | tuple | dict):
        return len(value)
    raise ExpressionError(f"len() needs text, a list or an object, not {kind_of(value)}")


def to_str(value: Any) -> str | None:
    return None if value is None else text_of(value)


def to_int(value: Any) -> int | None:
    if value is None or isinstance(value, int):
        return None if value is None else int(value)
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            raise ExpressionError(f"{value} is not a finite number")
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return to_int(_parse_float(value, "a whole number"))
    raise ExpressionError(f"cannot turn {kind_of(value)} into a whole number")


def to_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _parse_float(value, "a number")
    if isinstance(value, NUMBERS):
        result = float(value)
        if math.isfinite(result):
            return result
        raise ExpressionError(f"{value} is not a finite number")
    raise ExpressionError(f"cannot turn {kind_of(value)} into a number")


def _parse_float(text: str, what: str) -> float:
    try:
        result = float(text.strip())
    except ValueError:
        raise ExpressionError(f"cannot turn {quote(text)} into {what}") from None
    if not math.isfinite(result):
        raise ExpressionError(f"cannot turn {quote(text)} into {what}")
    return result


TRUE_TEXT: Final = frozenset({"true", "1", "yes", "y", "on"})
FALSE_TEXT: Final = frozenset({"false", "0", "no", "n", "off", ""})


def to_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_TEXT or word in FALSE_TEXT:
            return word in TRUE_TEXT
        raise ExpressionError(f"cannot turn {quote(value)} into true/false: use true/false, "
                              "yes/no, 1/0 or on/off")
    return bool(value)


def round_number(value: Any, digits: Any = None) -> Any:
    if value is None:
        return None
    _number(value, "round()")
    if digits is None:
        return round(value)
    places = _whole(digits, "the number of digits")
    if not -20 <= places <= 20:
        raise ExpressionError("round() takes between -20 and 20 digits")
    return round(value, places)


def absolute(value: Any) -> Any:
    return None if value is None else abs(_number(value, "abs()"))


def _extreme(pick: Callable[..., Any], values: tuple[Any, ...]) -> Any:
    items = values[0] if len(values) == 1 and isinstance(values[0], list | tuple) else values
    present = [item for item in items if item is not None]
    if not present:
        return None
    try:
        return pick(present)
    except TypeError:
        raise ExpressionError("cannot compare these values: " +
                              ", ".join(sorted({kind_of(i) for i in present}))) from None


def minimum(*values: Any) -> Any:
    return _extreme(min, values)


def maximum(*values: Any) -> Any:
    return _extreme(max, values)


def replace(value: Any, old: Any, new: Any) -> str | None:
    if value is None:
        return None
    text, old_text, new_text = _text(value), _text(old), _text(new)
    count = len(text) + 1 if not old_text else text.count(old_text)
    check_size(len(text) + count * (len(new_text) - len(old_text)), text)
    return text.replace(old_text, new_text)


def split(value: Any, separator: Any = None) -> list[str] | None:
    if value is None:
        return None
    if separator is not None and _text(separator) == "":
        raise ExpressionError("split() needs a separator that is not empty")
    return _text(value).split(None if separator is None else _text(separator))


def join(items: Any, separator: Any = "") -> str:
    if items is None:
        return ""
    if not isinstance(items, list | tuple):
        raise ExpressionError(f"join() needs a list, not {kind_of(items)}")
    texts = [_text(item) for item in items]
    glue = _text(separator)
    check_size(sum(map(len, texts)) + len(glue) * max(len(texts) - 1, 0), "")
    return glue.join(texts)


def substr(value: Any, start: Any, count: Any = None) -> str | None:
    if value is None:
        return None
    text, first = _text(value), _whole(start, "the start of substr()")
    if count is None:
        return text[first:]
    size = _whole(count, "the length of substr()")
    if size < 0:
        raise ExpressionError("the length of substr() cannot be negative")
    first = first if first >= 0 else max(len(text) + first, 0)
    return text[first:first + size]


def starts_with(value: Any, prefix: Any) -> bool:
    return value is not None and _text(value).startswith(_text(prefix))


def ends_with(value: Any, suffix: Any) -> bool:
    return value is not None and _text(value).endswith(_text(suffix))


def contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    if isinstance(container, str):
        return _text(item) in container
    if isinstance(container, list | tuple | dict):
        try:
            return item in container
        except TypeError:
            raise ExpressionError(f"{kind_of(item)} cannot be a key") from None
    raise ExpressionError(f"contains() needs text, a list or an object, not "
                          f"{kind_of(container)}")


def now() -> str:
    return iso_utc(datetime.now(UTC))


def _format(fmt: Any, *, for_reading: bool) -> str:
    problem = format_problem(fmt, for_reading=for_reading)
    if problem:
        raise ExpressionError(problem)
    return str(fmt)


def _zone(name: Any) -> tzinfo | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise ExpressionError(f"a time zone is a name such as Europe/Paris, not {kind_of(name)}")
    try:
        return zone_named(name)
    except TimestampError as exc:
        raise ExpressionError(str(exc)) from None


def _moment(value: Any, fmt: Any = "iso", zone: Any = None) -> datetime:
    try:
        return to_datetime(value, _format(fmt, for_reading=True), _zone(zone))
    except TimestampError as exc:
        raise ExpressionError(str(exc)) from None


def parse_date(value: Any, fmt: Any = "iso", zone: Any = None) -> str | None:
    return None if is_empty(value) else iso_utc(_moment(value, fmt, zone))


def format_date(value: Any, fmt: Any, zone: Any = None) -> Any:
    if is_empty(value):
        return None
    return format_datetime(_moment(value), _format(fmt, for_reading=False), _zone(zone))


def unix_time(value: Any, unit: Any = "s") -> int | float | None:
    if unit not in ("s", "ms"):
        raise ExpressionError("to_unix() takes the unit 's' (seconds) or 'ms' (milliseconds)")
    return None if is_empty(value) else to_unix(_moment(value), unit)


def sha256(value: Any) -> str | None:
    return None if value is None else hashlib.sha256(_text(value).encode()).hexdigest()


def md5(value: Any) -> str | None:
    if value is None:
        return None
    return hashlib.md5(_text(value).encode(), usedforsecurity=False).hexdigest()


def _field_placeholder(path: Any) -> Any:  # pragma: no cover - compiled by the parser
    raise AssertionError("field() is compiled by the parser")


def _reading_format(fmt: Any) -> str | None:
    return format_problem(fmt, for_reading=True)


def _writing_format(fmt: Any) -> str | None:
    return format_problem(fmt, for_reading=False)


def _unit(unit: Any) -> str | None:
    return None if unit in ("s", "ms") else "the unit is 's' (seconds) or 'ms' (milliseconds)"


def _path(path: Any) -> str | None:
    if not isinstance(path, str) or not path or "" in path.split("."):
        return "field() takes a dotted path such as 'customer.id' or 'items.0.sku'"
    return None


MAX_ARGS: Final = 64

FUNCTIONS: Final[dict[str, Function]] = {
    "lower": Function(lower, "lower(text)", 1, 1),
    "upper": Function(upper, "upper(text)", 1, 1),
    "trim": Function(trim, "trim(text)", 1, 1),
    "concat": Function(concat, "concat(a, b, ...)", 1, MAX_ARGS),
    "coalesce": Function(coalesce, "coalesce(a, b, ...)", 1, MAX_ARGS),
    "if_empty": Function(if_empty, "if_empty(value, default)", 2, 2),
    "len": Function(length, "len(value)", 1, 1),
    "str": Function(to_str, "str(value)", 1, 1),
    "int": Function(to_int, "int(value)", 1, 1),
    "float": Function(to_float, "float(value)", 1, 1),
    "bool": Function(to_bool, "bool(value)", 1, 1),
    "round": Function(round_number, "round(number, digits?)", 1, 2),
    "abs": Function(absolute, "abs(number)", 1, 1),
    "min": Function(minimum, "min(a, b, ...) or min(list)", 1, MAX_ARGS),
    "max": Function(maximum, "max(a, b, ...) or max(list)", 1, MAX_ARGS),
    "replace": Function(replace, "replace(text, old, new)", 3, 3),
    "split": Function(split, "split(text, separator?)", 1, 2),
    "join": Function(join, "join(list, separator?)", 1, 2),
    "substr": Function(substr, "substr(text, start, length?)", 2, 3),
    "starts_with": Function(starts_with, "starts_with(text, prefix)", 2, 2),
    "ends_with": Function(ends_with, "ends_with(text, suffix)", 2, 2),
    "contains": Function(contains, "contains(text or list or object, item)", 2, 2),
    "now": Function(now, "now()", 0, 0, pure=False),
    "parse_date": Function(parse_date, "parse_date(value, format?, timezone?)", 1, 3,
                           checks=((1, _reading_format), (2, zone_problem))),
    "format_date": Function(format_date, "format_date(value, format, timezone?)", 2, 3,
                            checks=((1, _writing_format), (2, zone_problem))),
    "to_unix": Function(unix_time, "to_unix(value, unit?)", 1, 2, checks=((1, _unit),)),
    "sha256": Function(sha256, "sha256(value)", 1, 1),
    "md5": Function(md5, "md5(value)", 1, 1),
    "field": Function(_field_placeholder, "field('path.to.value')", 1, 1,
                      checks=((0, _path),)),
}

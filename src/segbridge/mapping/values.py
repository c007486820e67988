"""Values as the mapping sees them: "missing", text for ids, quoting for messages, and the
JSON constants of a spec (checked once, copied per record only when they are mutable)."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import orjson


class _Missing:
    """The path does not exist in the record (distinct from a null value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

SCALARS: Final = (str, int, float, bool, type(None))


def is_index(key: str) -> bool:
    """A path segment that can index a list: 0, 12, -1."""
    digits = key[1:] if key[:1] == "-" else key
    return digits.isascii() and digits.isdigit()


def is_empty(value: Any) -> bool:
    """No value: absent, null or the empty string."""
    return value is None or value is MISSING or (type(value) is str and not value)


def kind_of(value: Any) -> str:
    """How a value is called in messages for people."""
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def quote(value: Any, limit: int = 60) -> str:
    """A value for a message: text in single quotes, cut to ``limit`` characters."""
    text = value if isinstance(value, str) else text_of(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'" if isinstance(value, str) else text


def number_text(value: int | float | Decimal) -> str:
    """42 -> "42", 42.0 -> "42", 42.5 -> "42.5"; refuses NaN and infinities."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return str(int(value)) if value.is_integer() else repr(value)
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def text_of(value: Any) -> str:
    """Any value as text: numbers without a useless '.0', true/false, lists and objects as
    JSON, dates and other values by str()."""
    if isinstance(value, str):
        return value
    if value is None or value is MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        try:
            return number_text(value)
        except ValueError:
            return str(value)
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def id_text(value: Any) -> str:
    """A value that must become text (ids, event, name): text, numbers and other scalars;
    raises ValueError with the reason for true/false, lists and objects."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise ValueError("is true/false, not text or a number")
    if isinstance(value, int | float | Decimal):
        return number_text(value)
    if isinstance(value, dict):
        raise ValueError("is an object, not text")
    if isinstance(value, list | tuple):
        raise ValueError("is a list, not text")
    return str(value)


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` is not a JSON value (None when it is)."""
    if depth > 32:
        return "is nested too deeply"
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    if isinstance(value, SCALARS):
        return None
    if isinstance(value, list):
        for item in value:
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"has a key {key!r} that is not text"
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    return (f"holds {kind_of(value)}; use text, numbers, true/false, null, lists and objects "
            "(quote dates in YAML)")


def is_immutable(value: Any) -> bool:
    """True for a JSON value holding no list and no object (safe to share between calls)."""
    return isinstance(value, SCALARS)


def copier(value: Any) -> Callable[[], Any]:
    """A function returning a fresh copy of a JSON constant: the value itself when it is
    immutable, a shallow copy for a flat list or object, a deep copy otherwise."""
    if is_immutable(value):
        return lambda: value
    items = value.values() if isinstance(value, dict) else value
    if all(is_immutable(item) for item in items):
        return value.copy  # type: ignore[no-any-return]
    return lambda: _deep_copy(value)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value

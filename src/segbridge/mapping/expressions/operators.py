"""Operators of the expression language, on the value kinds it knows: numbers, text, lists,
objects and null. Everything that can make a large result is capped (text and lists at
MAX_ITEMS, whole numbers at MAX_INT_BITS), and ``%`` is arithmetic only (never
printf-style formatting)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from segbridge.mapping.expressions.errors import ExpressionError
from segbridge.mapping.values import kind_of

MAX_ITEMS: Final = 100_000
"""Longest text (characters) or list (items) an expression may build."""

MAX_INT_BITS: Final = 4_096
"""Largest whole number an expression may build (about 1,200 digits)."""

NUMBERS: Final = (int, float, Decimal)
SEQUENCES: Final = (str, list, tuple)
CONTAINERS: Final = (list, tuple, dict)

BinaryOp = Callable[[Any, Any], Any]


def check_size(length: int, sample: Any) -> None:
    """Refuse a text or list of ``length`` over MAX_ITEMS, before it is built."""
    if length > MAX_ITEMS:
        raise ExpressionError(f"the text would be longer than {MAX_ITEMS:,} characters"
                              if isinstance(sample, str) else
                              f"the list would have more than {MAX_ITEMS:,} items")


def _numbers(a: Any, b: Any, verb: str) -> None:
    if not (isinstance(a, NUMBERS) and isinstance(b, NUMBERS)):
        raise ExpressionError(f"cannot {verb} {kind_of(a)} and {kind_of(b)}")


def _int_cap(value: Any) -> Any:
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        raise ExpressionError("the number would be too large")
    return value


def add(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        check_size(len(a) + len(b), a)
        return a + b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        check_size(len(a) + len(b), a)
        return [*a, *b]
    _numbers(a, b, "add")
    return _int_cap(a + b)


def subtract(a: Any, b: Any) -> Any:
    _numbers(a, b, "subtract")
    return _int_cap(a - b)


def multiply(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, SEQUENCES):
        a, b = b, a
    if isinstance(a, SEQUENCES) and isinstance(b, int) and not isinstance(b, bool):
        return _repeat(a, b)
    _numbers(a, b, "multiply")
    if type(a) is int and type(b) is int and a.bit_length() + b.bit_length() > MAX_INT_BITS:
        raise ExpressionError("the number would be too large")
    return a * b


def _repeat(sequence: Any, times: int) -> Any:
    check_size(len(sequence) * max(times, 0), sequence)
    if not isinstance(sequence, str) and any(isinstance(i, CONTAINERS) for i in sequence):
        raise ExpressionError("only lists of plain values can be repeated with *")
    return sequence * times


def divide(a: Any, b: Any) -> Any:
    _numbers(a, b, "divide")
    return a / b


def floor_divide(a: Any, b: Any) -> Any:
    _numbers(a, b, "divide")
    return a // b


def modulo(a: Any, b: Any) -> Any:
    _numbers(a, b, "take the remainder of")
    return a % b


def negate(a: Any) -> Any:
    if not isinstance(a, NUMBERS):
        raise ExpressionError(f"cannot negate {kind_of(a)}")
    return -a


def plus(a: Any) -> Any:
    if not isinstance(a, NUMBERS):
        raise ExpressionError(f"cannot use unary + on {kind_of(a)}")
    return +a


def contains(container: Any, item: Any) -> bool:
    """``item in container``: text in text, an item in a list, a key in an object; nothing
    is in null."""
    if container is None:
        return False
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ExpressionError(f"cannot look for {kind_of(item)} in text")
        return item in container
    if isinstance(container, CONTAINERS):
        return item in container
    raise ExpressionError(f"cannot look inside {kind_of(container)}")


def not_contains(container: Any, item: Any) -> bool:
    return not contains(container, item)


def _ordered(op: BinaryOp, word: str) -> BinaryOp:
    def compare(a: Any, b: Any) -> Any:
        try:
            return op(a, b)
        except TypeError:
            raise ExpressionError(f"cannot compare {kind_of(a)} and {kind_of(b)} "
                                  f"with {word}") from None

    return compare


COMPARISONS: Final[dict[str, BinaryOp]] = {
    "Eq": operator.eq,
    "NotEq": operator.ne,
    "Lt": _ordered(operator.lt, "<"),
    "LtE": _ordered(operator.le, "<="),
    "Gt": _ordered(operator.gt, ">"),
    "GtE": _ordered(operator.ge, ">="),
    "Is": operator.is_,
    "IsNot": operator.is_not,
    "In": lambda a, b: contains(b, a),
    "NotIn": lambda a, b: not_contains(b, a),
}

BINARY: Final[dict[str, BinaryOp]] = {
    "Add": add,
    "Sub": subtract,
    "Mult": multiply,
    "Div": divide,
    "FloorDiv": floor_divide,
    "Mod": modulo,
}


def index(container: Any, key: Any) -> Any:
    """``container[key]``: a key of an object, an item of a list or a character of text;
    null when absent (and null[anything] is null)."""
    if container is None:
        return None
    if isinstance(container, dict):
        try:
            return container.get(key)
        except TypeError:
            raise ExpressionError(f"{kind_of(key)} cannot be a key") from None
    if isinstance(container, SEQUENCES):
        if isinstance(key, bool) or not isinstance(key, int):
            raise ExpressionError(f"a {'text' if isinstance(container, str) else 'list'} is "
                                  f"indexed by a whole number, not {kind_of(key)}")
        try:
            return container[key]
        except IndexError:
            return None
    raise ExpressionError(f"cannot index {kind_of(container)}")


def slice_of(container: Any, start: Any, stop: Any, step: Any) -> Any:
    if container is None:
        return None
    if not isinstance(container, SEQUENCES):
        raise ExpressionError(f"cannot slice {kind_of(container)}")
    for bound in (start, stop, step):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise ExpressionError(f"slice bounds are whole numbers, not {kind_of(bound)}")
    if step == 0:
        raise ExpressionError("a slice step cannot be 0")
    return container[start:stop:step]

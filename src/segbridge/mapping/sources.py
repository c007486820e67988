"""Where a value comes from: a field path, a constant or an expression, compiled to a
closure specialised per kind. A resolver returns the value, or MISSING when a field path
does not exist in the record (expressions and constants always have a value, maybe null).

    field "amount"           -> data.get("amount", MISSING)     (one dict lookup)
    field "items.0.sku"      -> path pre-split; list items by index; falls back to a
                                top-level key spelled "items.0.sku" (CSV headers)
    constant {...}           -> the value itself when immutable, else a fresh copy per call
    expression "lower(x)"    -> the compiled closures; errors become MappingError(target)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segbridge.exports.contracts import MappingError
from segbridge.mapping.expressions import ExpressionError, ParsedExpression
from segbridge.mapping.values import MISSING, copier, is_index

Resolver = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Source:
    """One source of the spec, checked. ``value`` is the constant (already converted for
    text fields and timestamps); ``default`` is MISSING when there is none."""

    kind: str
    text: str = ""
    path: tuple[str, ...] = ()
    value: Any = None
    expression: ParsedExpression | None = None
    required: bool | None = None
    default: Any = MISSING

    @property
    def missing(self) -> str:
        """How a missing value of this source is told to people."""
        if self.kind == "field":
            return f"the field '{self.text}' is missing or empty"
        if self.kind == "expression":
            return f"the expression '{short(self.text)}' gave no value"
        return "the constant is empty"

    @property
    def described(self) -> str:
        if self.kind == "field":
            return f"the field '{self.text}'"
        if self.kind == "expression":
            return f"the expression '{short(self.text)}'"
        return "the constant"


def short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def resolver(source: Source, target: str) -> Resolver:
    """The closure reading ``source`` from a record; ``target`` names the call field in
    errors."""
    if source.kind == "field":
        return path_getter(source.path, source.text)
    if source.kind == "constant":
        make = copier(source.value)
        return lambda _data: make()
    assert source.expression is not None
    return expression_getter(source.expression, target)


def path_getter(path: tuple[str, ...], text: str) -> Resolver:
    if len(path) == 1:
        key = path[0]
        return lambda data: data.get(key, MISSING)
    steps = tuple((key, int(key) if is_index(key) else None) for key in path)

    def get(data: dict[str, Any]) -> Any:
        value: Any = data
        for key, index in steps:
            if isinstance(value, dict):
                value = value.get(key, MISSING)
                if value is MISSING:
                    break
            elif index is not None and isinstance(value, list | tuple) \
                    and -len(value) <= index < len(value):
                value = value[index]
            else:
                value = MISSING
                break
        return data.get(text, MISSING) if value is MISSING else value

    return get


def expression_getter(expression: ParsedExpression, target: str) -> Resolver:
    if expression.constant:
        make = copier(expression.value)
        return lambda _data: make()
    evaluate = expression.evaluate
    text = short(expression.text)

    def get(data: dict[str, Any]) -> Any:
        try:
            return evaluate(data)
        except ExpressionError as exc:
            raise MappingError(target, f"the expression '{text}' failed: {exc}") from None

    return get

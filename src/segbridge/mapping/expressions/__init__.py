"""A small, sandboxed expression language for mappings and filters.

An expression reads the fields of one record and nothing else: no attributes, no imports, no
builtins, no files, no network; only whitelisted functions called by name, with every
potentially large result capped. It is compiled once into closures and run per record.

    compile_expression("lower(trim(email))")({"email": " A@B.C "})  ->  "a@b.c"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from segbridge.mapping.expressions.errors import ExpressionError, ExpressionSyntaxError
from segbridge.mapping.expressions.functions import FUNCTIONS
from segbridge.mapping.expressions.parser import (
    MAX_DEPTH,
    MAX_LENGTH,
    ParsedExpression,
    parse,
)

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "ExpressionError",
    "ExpressionSyntaxError",
    "ParsedExpression",
    "compile_expression",
    "parse",
]


def compile_expression(text: str) -> Callable[[Mapping[str, Any]], Any]:
    """Compile ``text`` once; the result evaluates it for one record and raises
    ExpressionError (a RecordError, and a ValueError) when it fails. Raises
    ExpressionSyntaxError (a UserInputError, and a ValueError, with ``position``) when the
    text is refused."""
    return parse(text).evaluate

"""The two errors of the expression language, in segbridge's one exception tree
(``core.errors``); both are also ``ValueError``s, as they always were.

    UserInputError
    +-- ExpressionSyntaxError   refused when compiled (syntax, forbidden construct, unknown
                                function, wrong number of arguments); has the position
    RecordError
    +-- ExpressionError         failed for one record (division by zero, wrong type, ...)
"""

from __future__ import annotations

from segbridge.core.errors import RecordError, UserInputError


class ExpressionSyntaxError(UserInputError, ValueError):
    """The expression cannot be compiled. ``position`` is the 1-based character where the
    problem is (the whole text counts, across lines)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


class ExpressionError(RecordError, ValueError):
    """The expression failed on one record; the message says why, for people."""

"""Secrets are a type: the value never shows in repr, str, logs or f-strings."""

from __future__ import annotations

from typing import Final

MASK: Final = "********"


class Secret:
    """A secret value; ``reveal()`` is the only way to read it, at the moment of use."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled")


def looks_masked(value: str) -> bool:
    """True for a mask echoed back by a client (``********``, ``••••abcd``, ``xxxx``).

    Write keys are letters and digits, so any mask character means a mask was sent back.
    """
    stripped = value.strip()
    if not stripped:
        return False
    if any(ch in MASK_CHARACTERS for ch in stripped):
        return True
    return len(stripped) >= 4 and set(stripped.lower()) == {"x"}


MASK_CHARACTERS: Final = frozenset("*•●·")

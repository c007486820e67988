"""What a user submits from the Create connection pane, and the rules it must follow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

NAME_MAX_CHARS: Final = 100
MIN_CONCURRENCY: Final = 1
MAX_CONCURRENCY: Final = 25
DEFAULT_CONCURRENCY: Final = 25


@dataclass(frozen=True)
class ConnectionDraft:
    """A connection as submitted: every field as the user gave it, not yet validated."""

    name: str
    application: str | None
    settings: dict[str, str | None] = field(default_factory=dict)
    concurrency_level: int | None = None
    borrow_concurrency_from: str | None = None


def name_key(name: str) -> str:
    """The form of a name that must be unique in an account: trimmed, case ignored."""
    return name.strip().casefold()

"""What a user submits from the Create connection pane, and the rules it must follow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from segbridge.core.secrets import Secret

NAME_MAX_CHARS: Final = 100
MIN_CONCURRENCY: Final = 1
MAX_CONCURRENCY: Final = 25
DEFAULT_CONCURRENCY: Final = 25
MAX_REQUESTS_PER_SECOND: Final = 100_000.0
MAX_EVENTS_PER_SECOND: Final = 10_000_000.0


@dataclass(frozen=True)
class ConnectionDraft:
    """A connection as submitted: every field as the user gave it, not yet validated.

    Its settings are held as ``Secret``s (a repr, a log line or a traceback shows
    ``********``): which of them are secret is the application's to say, when the draft is
    checked (``validation.check_settings`` reveals them there, and only there)."""

    name: str
    application: str | None
    settings: Mapping[str, str | Secret | None] = field(default_factory=dict)
    concurrency_level: int | None = None
    borrow_concurrency_from: str | None = None
    requests_per_second: float | None = None  # the rate limit; None: none
    events_per_second: float | None = None

    def __post_init__(self) -> None:
        masked = {key: Secret(value) if isinstance(value, str) else value
                  for key, value in self.settings.items()}
        object.__setattr__(self, "settings", masked)


def name_key(name: str) -> str:
    """The form of a name that must be unique in an account: trimmed, case ignored."""
    return name.strip().casefold()

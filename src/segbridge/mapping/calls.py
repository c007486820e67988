"""What each Segment call type takes and requires (see docs/segment.md, HTTP Tracking API).

identify, track, page, screen and group need userId or anonymousId (at least one); track
needs event; group needs groupId; alias needs previousId and userId. Every call may carry
timestamp, context and integrations; the payload is traits (identify, group) or properties
(track, page, screen); alias has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

IDS: Final = ("userId", "anonymousId")
TEXT_FIELDS: Final = ("userId", "anonymousId", "previousId", "groupId", "event", "name",
                      "category")
"""Call fields that are text: the ids (numbers become text) and the names."""
COMMON_FIELDS: Final = ("timestamp", "context", "integrations")


@dataclass(frozen=True, slots=True)
class CallFields:
    """The identity and name fields of one call type.

    takes: the text fields it accepts; requires: those it always needs; one_of: fields of
    which at least one is needed; payload: "traits", "properties" or None.
    """

    takes: tuple[str, ...]
    requires: tuple[str, ...]
    one_of: tuple[str, ...]
    payload: str | None

    @property
    def keys(self) -> tuple[str, ...]:
        """Every top-level key a mapping of this call may have."""
        payload = (self.payload,) if self.payload else ()
        return (*self.takes, *COMMON_FIELDS, *payload)


CALL_FIELDS: Final[dict[str, CallFields]] = {
    "identify": CallFields(IDS, (), IDS, "traits"),
    "track": CallFields((*IDS, "event"), ("event",), IDS, "properties"),
    "page": CallFields((*IDS, "name", "category"), (), IDS, "properties"),
    "screen": CallFields((*IDS, "name", "category"), (), IDS, "properties"),
    "group": CallFields((*IDS, "groupId"), ("groupId",), IDS, "traits"),
    "alias": CallFields(("previousId", "userId"), ("previousId", "userId"), (), None),
}

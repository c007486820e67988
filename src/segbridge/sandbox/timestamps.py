"""What Segment stamps on receipt: receivedAt, and timestamp corrected for clock skew.

``timestamp = receivedAt - (sentAt - originalTimestamp)``: the client's clock may be wrong,
but the time between the event and the request leaving the client is measured on one clock.
``originalTimestamp`` keeps the timestamp as sent. Without ``timestamp`` the call is stamped
with the receipt time; without ``sentAt`` (on the call or the batch) no correction is made;
an unparseable ``timestamp`` is kept as ``originalTimestamp`` and replaced by the receipt time;
a correction that would leave the years a date can hold (Go's zero time, year 1, sent with a
clock a little ahead) is not made: the timestamp is kept as sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a ``Z``, as Segment writes its timestamps."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(value: object) -> datetime | None:
    """An aware datetime from an ISO-8601 string (naive means UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Receipt:
    """The receipt time of one request, shared by all of its calls."""

    __slots__ = ("_corrected_cache", "_sent_cache", "at", "iso")

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime.now(UTC)
        self.iso = iso(self.at)
        self._sent_cache: dict[str, datetime | None] = {}
        # the calls of one request often share their timestamps: each pair is worked out once
        self._corrected_cache: dict[tuple[object, object], str] = {}

    def _sent(self, sent_at: str) -> datetime | None:
        if sent_at not in self._sent_cache:
            self._sent_cache[sent_at] = parse(sent_at)
        return self._sent_cache[sent_at]

    def corrected(self, original: object, sent_at: object) -> str:
        """The skew-corrected ``timestamp`` for a call sent with these two values."""
        if original == sent_at:
            return self.iso
        if not isinstance(original, str) or not isinstance(sent_at, str | None):
            return self._corrected(original, sent_at)
        pair = (original, sent_at)
        known = self._corrected_cache.get(pair)
        if known is None:
            known = self._corrected_cache[pair] = self._corrected(original, sent_at)
        return known

    def _corrected(self, original: object, sent_at: object) -> str:
        moment = parse(original)
        if moment is None:
            return self.iso
        sent = self._sent(sent_at) if isinstance(sent_at, str) else None
        if sent is None:
            return original if isinstance(original, str) else self.iso
        try:
            return iso(self.at - (sent - moment))
        except OverflowError:  # before year 1 or after 9999: no correction (it was a 500)
            return original if isinstance(original, str) else self.iso

    def stamp(self, call: dict[str, Any], batch_sent_at: object) -> None:
        """Add receivedAt, sentAt (from the batch), originalTimestamp and timestamp."""
        call["receivedAt"] = self.iso
        sent_at = call.get("sentAt")
        if sent_at is None and batch_sent_at is not None:
            sent_at = call["sentAt"] = batch_sent_at
        original = call.get("timestamp")
        if original is None:
            call["timestamp"] = self.iso
            return
        call["originalTimestamp"] = original
        call["timestamp"] = self.corrected(original, sent_at)

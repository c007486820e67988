"""Incremental HTTP exports: the window of change times one run reads.

A run reads the records with ``last < field <= upper``. ``last`` is what the flow's last
successful run stored (or ``since.start``, or nothing on a first run) and goes in the query
(``since.param``); ``upper`` is the time the run started less ``lag_seconds`` (records that
changed later come with the next run: an API may still be writing them). Both are saved as
the run's bounds, so a resumed run reads the same window; ``upper`` is stored on the flow only
after the run succeeds (``cursor_after``), as database exports do.

A record's field is an ISO 8601 date/time (a naive one is UTC) or a number of seconds since
1970.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from segbridge.exports.errors import ExportError


@dataclass(frozen=True)
class Window:
    """The change times one run reads: after ``last`` (None: from the start), up to
    ``upper``."""

    field: str
    param: str
    format: str
    until_param: str | None
    last: datetime | None
    upper: datetime

    def params(self) -> dict[str, str]:
        """What the API is asked for: changes since ``last`` (and until ``upper``)."""
        params = {self.param: self.show(self.last)} if self.last is not None else {}
        if self.until_param:
            params[self.until_param] = self.show(self.upper)
        return params

    def show(self, moment: datetime) -> str:
        if self.format == "epoch":
            return str(int(moment.timestamp()))
        return iso(moment)

    def holds(self, moment: datetime) -> bool:
        return (self.last is None or moment > self.last) and moment <= self.upper

    def to_json(self) -> dict[str, Any]:
        return {"since": {"field": self.field,
                          "last": iso(self.last) if self.last is not None else None,
                          "upper": iso(self.upper)}}

    def cursor_after(self) -> dict[str, Any]:
        return {"field": self.field, "value": iso(self.upper)}


def open_window(since: Mapping[str, Any], saved_bounds: Mapping[str, Any] | None,
                saved_cursor: Mapping[str, Any] | None, now: datetime) -> Window:
    """A fresh run's window (after the stored cursor, up to now less the lag), or the window
    a resumed run started with."""
    field = str(since["field"])
    saved = (saved_bounds or {}).get("since")
    if isinstance(saved, Mapping) and saved.get("field") == field:
        last = saved.get("last")
        return _window(since, parse_moment(last) if last is not None else None,
                       _moment(saved.get("upper"), "the run's saved window"))
    lag = timedelta(seconds=int(since.get("lag_seconds") or 0))
    upper = (now - lag).astimezone(UTC).replace(microsecond=0)
    return _window(since, _last(since, saved_cursor, field), upper)


def _window(since: Mapping[str, Any], last: datetime | None, upper: datetime) -> Window:
    until = since.get("until_param")
    return Window(field=str(since["field"]), param=str(since["param"]),
                  format=str(since.get("format") or "iso"),
                  until_param=str(until) if until else None, last=last, upper=upper)


def _last(since: Mapping[str, Any], saved: Mapping[str, Any] | None,
          field: str) -> datetime | None:
    if saved and saved.get("field") == field and saved.get("value") is not None:
        return _moment(saved.get("value"), "the flow's stored cursor")
    start = since.get("start")
    return _moment(start, "since.start") if start else None


def _moment(value: Any, what: str) -> datetime:
    moment = parse_moment(value)
    if moment is None:
        raise ExportError(f"{what} ({value!r}) is not a date and time; reset the flow's "
                          "cursor, or write since.start as 2026-01-31T00:00:00Z.",
                          cause="config")
    return moment


def parse_moment(value: Any) -> datetime | None:
    """An ISO 8601 text or a number of seconds since 1970 as an aware datetime (None: not
    one)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"

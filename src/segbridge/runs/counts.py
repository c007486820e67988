"""A run's counts and its record errors before they are written: plain data, shared by the
run's process and its lane processes (so nothing here imports the database layer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from segbridge.core.errors import FailedStep
from segbridge.exports.limits import EXCERPT_CHARS, clip_text, excerpt

COUNT_KEYS = ("exported", "sent", "failed", "ignored", "retried", "batches", "bytes")
KEPT_DATA_BYTES = 64 * 1024  # a record error keeps its data whole up to this (to retry it)


class RecordErrorStatus(StrEnum):
    """Where a kept record error stands; stored (``record_errors.status``) and shown as these
    strings."""

    OPEN = "open"  # not sent yet: it may be retried or resolved
    RETRYING = "retrying"  # a retry run is sending it again
    RETRIED = "retried"  # the retry failed again: that run's new error is the open one
    RESOLVED = "resolved"  # sent by a retry, or marked resolved by a user


@dataclass(slots=True)
class ErrorRow:
    """A record error before it is written: the step that refused the record, and why.

    What it keeps of the record is bounded, so the errors of a run stay small whatever the
    input: ``raw`` is an excerpt of at most EXCERPT_CHARS characters (" ... (N bytes)" when
    cut); ``data`` is kept whole when its JSON is at most KEPT_DATA_BYTES (it can then be
    retried), else it becomes an excerpt in ``raw`` and the reason says it cannot be retried
    as it is."""

    position: int
    ref: str
    step: FailedStep
    reason: str
    import_name: str | None = None
    field: str | None = None
    http_status: int | None = None
    retriable: bool = False
    data: dict[str, Any] | None = None
    raw: str | None = None

    def __post_init__(self) -> None:
        if self.raw is not None and len(self.raw) > EXCERPT_CHARS + 32:
            self.raw = clip_text(self.raw, None, EXCERPT_CHARS)
        if self.data is not None:
            self._bound_data(self.data)

    def _bound_data(self, data: dict[str, Any]) -> None:
        try:
            size: int | None = len(orjson.dumps(data, default=str))
        except (TypeError, ValueError, RecursionError):  # nested deeper than orjson writes
            size = None
        if size is not None and size <= KEPT_DATA_BYTES:
            return
        self.data = None
        if self.raw is None:
            self.raw = clip_text(excerpt(data), size, EXCERPT_CHARS)
        why = f"too large to keep whole ({size:,} bytes)" if size is not None \
            else "nested too deep to keep whole"
        self.reason = (f"{self.reason} (the record is {why}; only an excerpt is kept, so it "
                       "cannot be retried as it is)")


@dataclass
class Tally:
    """Counts of a chunk or a run, in total and per import."""

    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    imports: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, key: str, amount: int = 1, import_name: str | None = None) -> None:
        self.totals[key] += amount
        if import_name is not None and key in ("sent", "failed", "ignored"):
            per = self.imports.setdefault(import_name, {"sent": 0, "failed": 0, "ignored": 0})
            per[key] += amount

    def add_to_import(self, key: str, amount: int, import_name: str) -> None:
        """A count of one import only (a diff sync's new, changed, unchanged, deleted)."""
        if amount:
            per = self.imports.setdefault(import_name, {"sent": 0, "failed": 0, "ignored": 0})
            per[key] = per.get(key, 0) + amount

    def add_for_every_import(self, key: str, import_names: list[str]) -> None:
        """One record counted once in the totals and once for each import (failed, ignored)."""
        self.totals[key] += 1
        for name in import_names:
            per = self.imports.setdefault(name, {"sent": 0, "failed": 0, "ignored": 0})
            per[key] += 1

    def merged_into(self, counts: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {key: int(counts.get(key, 0)) + value
                                  for key, value in self.totals.items()}
        per = {name: dict(values) for name, values in counts.get("imports", {}).items()}
        for name, values in self.imports.items():
            into = per.setdefault(name, {"sent": 0, "failed": 0, "ignored": 0})
            for key, value in values.items():
                into[key] = into.get(key, 0) + value
        merged["imports"] = per
        return merged

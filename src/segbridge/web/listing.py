"""The Connections list: one row per connection, searched and sorted as the user asked."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from segbridge.apps.base import Application, Registry
from segbridge.connections.views import ConnectionPublic, ConnectionRef

SORTS = ("name", "application", "status", "tested", "concurrency")
DEFAULT_SORT = "name"
ICONS = {"segment": "icons/segment.svg"}
GENERIC_ICON = "icons/application.svg"


def icon_for(application_key: str) -> str:
    return ICONS.get(application_key, GENERIC_ICON)


def ordered_applications(registry: Registry, query: str = "") -> list[Application]:
    """The Application list: Segment first, then by name; filtered by name or description."""
    needle = query.strip().casefold()
    found = [app for app in registry.all()
             if not needle or needle in f"{app.name} {app.key} {app.description}".casefold()]
    return sorted(found, key=lambda app: (app.key != "segment", app.name.casefold()))


@dataclass(frozen=True)
class Row:
    id: str
    name: str
    application: str
    application_name: str
    icon: str
    status: str
    tested_at: str | None  # ISO 8601
    tested_when: str  # "3 min ago"
    test_ok: bool | None
    test_summary: str
    level: int
    concurrency: str
    borrowing: bool
    lender_id: str | None
    borrowers: list[str]
    flows: list[ConnectionRef]  # the flows that use the connection


def row(connection: ConnectionPublic, registry: Registry, now: datetime) -> Row:
    application = registry.get(connection.application)
    test = connection.last_test.as_json() if connection.last_test else {}
    effective = connection.effective_concurrency
    level = effective.level
    if effective.borrowing:
        concurrency = f"borrows from {effective.lender_name}"
    elif connection.concurrency_level is None:
        concurrency = f"{level} (default)"
    else:
        concurrency = str(level)
    tested_at = connection.last_test.at if connection.last_test else None
    return Row(
        id=connection.id, name=connection.name, application=connection.application,
        application_name=application.name if application else connection.application,
        icon=icon_for(connection.application), status=connection.status,
        tested_at=tested_at, tested_when=ago(tested_at, now),
        test_ok=connection.last_test.ok if connection.last_test else None,
        test_summary=_summary(test), level=level, concurrency=concurrency,
        borrowing=effective.borrowing, lender_id=effective.lender_id,
        borrowers=[b.name for b in connection.used_by.borrowers],
        flows=list(connection.used_by.flows),
    )


def _summary(test: Mapping[str, object]) -> str:
    if not test:
        return "Not tested"
    if test.get("ok"):
        latency = test.get("latency_ms")
        return f"Passed in {latency:.0f} ms" if isinstance(latency, int | float) else "Passed"
    return str(test.get("message") or "Failed")


def ago(iso: str | None, now: datetime) -> str:
    if not iso:
        return "never"
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int((now - moment).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return moment.strftime("%d %b %Y")


def _sort_key(sort: str) -> Callable[[Row], Any]:
    keys: dict[str, Callable[[Row], Any]] = {
        "name": lambda r: r.name.casefold(),
        "application": lambda r: (r.application_name.casefold(), r.name.casefold()),
        "status": lambda r: (r.status, r.name.casefold()),
        "tested": lambda r: (r.tested_at or "", r.name.casefold()),
        "concurrency": lambda r: (r.level, r.name.casefold()),
    }
    return keys.get(sort, keys[DEFAULT_SORT])


@dataclass(frozen=True)
class ListView:
    rows: list[Row]
    total: int
    query: str
    sort: str
    descending: bool

    def next_direction(self, column: str) -> str:
        """Clicking the sorted column flips it; another column sorts ascending."""
        return "desc" if column == self.sort and not self.descending else "asc"

    def aria_sort(self, column: str) -> str:
        if column != self.sort:
            return "none"
        return "descending" if self.descending else "ascending"


def list_view(connections: Iterable[ConnectionPublic], registry: Registry, *, query: str = "",
              sort: str = DEFAULT_SORT, direction: str = "asc") -> ListView:
    now = datetime.now(UTC)
    rows = [row(c, registry, now) for c in connections]
    total = len(rows)
    needle = query.strip().casefold()
    if needle:
        rows = [r for r in rows if needle in _haystack(r)]
    sort = sort if sort in SORTS else DEFAULT_SORT
    descending = direction == "desc"
    rows.sort(key=_sort_key(sort), reverse=descending)
    return ListView(rows, total, query.strip(), sort, descending)


def _haystack(r: Row) -> str:
    return " ".join([r.name, r.application_name, r.status, r.concurrency, *r.borrowers,
                     *(flow.name for flow in r.flows)]).casefold()

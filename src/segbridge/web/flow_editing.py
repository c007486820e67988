"""The flow builder's edits: each takes a flow document (``FlowDocument.as_written()``) and
returns a new one with one part changed (the name, the source, the filters, the schedule, one
destination); the input is never modified. The builder saves the result with one service call
(``FlowService.update(..., unfinished=True)``), which checks it and lists every problem.

Also the schedule's help: the cron presets, and the next times a cron fires in a time zone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

Document = dict[str, object]
FILE_KINDS = ("csv", "ndjson", "json")
DATABASE_KIND = "database"


@dataclass(frozen=True)
class Preset:
    label: str
    cron: str  # "" means: no schedule


CRON_PRESETS: tuple[Preset, ...] = (
    Preset("Every 15 minutes", "*/15 * * * *"),
    Preset("Hourly", "0 * * * *"),
    Preset("Daily at 02:00", "0 2 * * *"),
    Preset("Weekdays at 09:00", "0 9 * * 1-5"),
    Preset("None (run only by hand)", ""),
)


def _copy(doc: Mapping[str, object]) -> Document:
    return dict(doc)


def renamed(doc: Mapping[str, object], name: str) -> Document:
    return {**_copy(doc), "name": name.strip()}


def with_export(doc: Mapping[str, object], export: Mapping[str, object] | None) -> Document:
    """The document with its source replaced (None: without a source)."""
    changed = _copy(doc)
    if export is None:
        changed.pop("export", None)
    else:
        changed["export"] = dict(export)
    return changed


def file_export(kind: str, *, upload: str = "", path: str = "",
                options: Mapping[str, object] | None = None, key_field: str = "") -> Document:
    """A file source: an upload of the account or a server path (whichever is given)."""
    export: Document = {"type": kind}
    if upload.strip():
        export["upload"] = upload.strip()
    elif path.strip():
        export["path"] = path.strip()
    if options:
        export["options"] = dict(options)
    if key_field.strip():
        export["key_field"] = key_field.strip()
    return export


def csv_options(*, delimiter: str, header: bool, encoding: str) -> Document:
    """CSV reading options; a tab may be written as ``\\t``."""
    return {"delimiter": "\t" if delimiter in ("\\t", "tab") else delimiter,
            "header": header, "encoding": encoding.strip() or "utf-8"}


def database_export(*, connection: str, query: str, cursor_column: str = "",
                    lag_seconds: object = 0, key_field: str = "") -> Document:
    """A database source; with a cursor column it is incremental (the lag as given: the
    document's check says what is wrong with it)."""
    export: Document = {"type": DATABASE_KIND, "connection": connection.strip(),
                        "query": query.strip()}
    if cursor_column.strip():
        export["cursor"] = {"column": cursor_column.strip(), "lag_seconds": lag_seconds}
    if key_field.strip():
        export["key_field"] = key_field.strip()
    return export


def whole_number(text: str) -> object:
    """A number typed in a form: an int when it is one, else the text (refused by the
    document's check, at its field)."""
    text = text.strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        return text


def with_filters(doc: Mapping[str, object], expressions: Sequence[str]) -> Document:
    """The document with these filters, in order (blank ones left out), after its other
    steps (lookups, which run before the filters anyway), which are kept as they are."""
    kept = [step for step in _list(doc.get("steps"))
            if not (isinstance(step, Mapping) and "filter" in step)]
    filters = [{"filter": {"expression": text.strip()}} for text in expressions if text.strip()]
    return {**_copy(doc), "steps": [*kept, *filters]}


def filters_of(doc: Mapping[str, object]) -> list[str]:
    """The filter expressions of a document's steps, in order."""
    found = []
    for step in _list(doc.get("steps")):
        part = step.get("filter") if isinstance(step, Mapping) else None
        if isinstance(part, Mapping) and isinstance(part.get("expression"), str):
            found.append(part["expression"])
    return found


def with_schedule(doc: Mapping[str, object], cron: str, timezone: str) -> Document:
    """The document with this schedule; an empty cron removes the schedule."""
    changed = _copy(doc)
    if cron.strip():
        changed["schedule"] = {"cron": cron.strip(), "timezone": timezone.strip() or "UTC"}
    else:
        changed.pop("schedule", None)
    return changed


def imports_of(doc: Mapping[str, object]) -> list[Document]:
    return [dict(step) for step in _list(doc.get("imports")) if isinstance(step, Mapping)]


def with_import_changed(doc: Mapping[str, object], index: int, *, name: str,
                        connection: str) -> Document:
    """One destination renamed and/or sent through another connection."""
    imports = imports_of(doc)
    _check_index(imports, index)
    imports[index] = {**imports[index], "name": name.strip(), "connection": connection.strip()}
    return {**_copy(doc), "imports": imports}


def without_import(doc: Mapping[str, object], index: int) -> Document:
    imports = imports_of(doc)
    _check_index(imports, index)
    del imports[index]
    return {**_copy(doc), "imports": imports}


def _check_index(imports: Sequence[object], index: int) -> None:
    if not 0 <= index < len(imports):
        raise IndexError(f"the flow has no destination {index + 1}")


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


# ---- the schedule's help --------------------------------------------------------------------

def time_zones() -> list[str]:
    return sorted(available_timezones())


def next_runs(cron: str, timezone: str, after: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` times the cron fires, read in ``timezone`` (aware datetimes in that
    zone). ValueError saying what is wrong for a cron or a zone that is not valid."""
    from croniter import croniter

    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{timezone}' is not an IANA time zone; e.g. 'Europe/Paris'") from None
    if not croniter.is_valid(cron):
        raise ValueError(f"'{cron}' is not a cron expression; e.g. '0 * * * *' (hourly)")
    runs = croniter(cron, after.astimezone(zone))
    return [runs.get_next(datetime) for _ in range(count)]

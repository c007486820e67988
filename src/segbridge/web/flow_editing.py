"""The flow builder's edits: each takes a flow document (``FlowDocument.as_written()``) and
returns a new one with one part changed (the name, the source, one lookup, the filters, the
schedule, one destination); the input is never modified. The builder saves the result with
one service call (``FlowService.update(..., unfinished=True)``), which checks it and lists
every problem.

Also the schedule's help: the cron presets, and the next times a cron fires in a time zone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

Document = dict[str, object]
FILE_KINDS = ("csv", "ndjson", "json", "parquet")
PARQUET_KIND = "parquet"  # binary and typed: no reading options, a list of columns instead
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
                options: Mapping[str, object] | None = None, key_field: str = "",
                columns: Sequence[str] = ()) -> Document:
    """A file source: an upload of the account or a server path (whichever is given); a
    Parquet source may name the columns it reads (``columns``; none: every column)."""
    export: Document = {"type": kind}
    if upload.strip():
        export["upload"] = upload.strip()
    elif path.strip():
        export["path"] = path.strip()
    if options:
        export["options"] = dict(options)
    if columns:
        export["columns"] = list(columns)
    if key_field.strip():
        export["key_field"] = key_field.strip()
    return export


def csv_options(*, delimiter: str, header: bool, encoding: str) -> Document:
    """CSV reading options; a tab may be written as ``\\t``."""
    return {"delimiter": "\t" if delimiter in ("\\t", "tab") else delimiter,
            "header": header, "encoding": encoding.strip() or "utf-8"}


def file_options(kind: str, *, delimiter: str, header: bool, encoding: str) -> Document:
    """The reading options of a file of ``kind``: CSV's, the encoding of a text file, none
    for Parquet (its file says how it is encoded; an option would be refused)."""
    if kind == "csv":
        return csv_options(delimiter=delimiter or ",", header=header, encoding=encoding)
    if kind == PARQUET_KIND:
        return {}
    return {"encoding": encoding.strip() or "utf-8"}


def column_names(text: str) -> list[str]:
    """The column names typed in a form: separated by commas or new lines, blanks left out,
    each once (in the order typed)."""
    names = (name.strip() for line in text.splitlines() for name in line.split(","))
    return list(dict.fromkeys(name for name in names if name))


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


# ---- lookups --------------------------------------------------------------------------------

ON_MISSING_CHOICES: tuple[tuple[str, str], ...] = (
    ("leave_empty", "Leave it empty: the record goes on without the field"),
    ("fail_record", "Fail the record: a record error, sent nowhere"),
    ("ignore_record", "Ignore the record: counted as ignored, sent nowhere"),
)
_PARAMETER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")  # as SQLAlchemy's text() reads one


def lookups_of(doc: Mapping[str, object]) -> list[Document]:
    """The lookup steps' settings (``{name, connection, query, params, ...}``), in order."""
    return [dict(step["lookup"]) for step in _list(doc.get("steps"))
            if isinstance(step, Mapping) and isinstance(step.get("lookup"), Mapping)]


def _other_steps(doc: Mapping[str, object]) -> list[object]:
    return [step for step in _list(doc.get("steps"))
            if not (isinstance(step, Mapping) and "lookup" in step)]


def _with_lookups(doc: Mapping[str, object], lookups: Sequence[Mapping[str, object]],
                  ) -> Document:
    """The lookups first (they run before the filters anyway), then the other steps."""
    steps = [{"lookup": dict(lookup)} for lookup in lookups]
    return {**_copy(doc), "steps": [*steps, *_other_steps(doc)]}


def with_lookup(doc: Mapping[str, object], lookup: Mapping[str, object],
                index: int | None = None) -> Document:
    """The document with this lookup added after the others (``index`` None) or in place
    of lookup ``index``; lookup N is then step N."""
    lookups = lookups_of(doc)
    if index is None:
        lookups.append(dict(lookup))
    else:
        _check_lookup(lookups, index)
        lookups[index] = dict(lookup)
    return _with_lookups(doc, lookups)


def without_lookup(doc: Mapping[str, object], index: int) -> Document:
    lookups = lookups_of(doc)
    _check_lookup(lookups, index)
    del lookups[index]
    return _with_lookups(doc, lookups)


def _check_lookup(lookups: Sequence[object], index: int) -> None:
    if not 0 <= index < len(lookups):
        raise IndexError(f"the flow has no lookup {index + 1}")


def lookup_settings(*, name: str, connection: str, query: str, params: Mapping[str, str],
                    key_column: str = "", on_missing: str = "leave_empty",
                    cache_size: str = "", cache_ttl: str = "") -> Document:
    """A lookup from the pane's form: blank optional parts left out (the defaults apply),
    numbers as typed when they are not numbers (the document's check names them)."""
    lookup: Document = {"name": name.strip(), "connection": connection.strip(),
                        "query": query.strip(), "params": dict(params)}
    if key_column.strip():
        lookup["key_column"] = key_column.strip()
    lookup["on_missing"] = on_missing or "leave_empty"
    cache = {key: whole_number(text) for key, text in
             (("size", cache_size), ("ttl_seconds", cache_ttl)) if text.strip()}
    if cache:
        lookup["cache"] = cache
    return lookup


def params_of(names: Sequence[str], fields: Sequence[str]) -> dict[str, str]:
    """Parameter -> record field from the form's rows; a row without a parameter name is
    left out (``unnamed_fields`` says which)."""
    return {name.strip(): field.strip() for name, field in zip(names, fields, strict=False)
            if name.strip()}


def unnamed_fields(names: Sequence[str], fields: Sequence[str]) -> list[str]:
    """The record fields typed in a row whose parameter name is blank."""
    return [field.strip() for name, field in zip(names, fields, strict=False)
            if field.strip() and not name.strip()]


def query_parameters(query: str) -> list[str]:
    """The ``:name`` parameters of a query, in order of first use."""
    return list(dict.fromkeys(_PARAMETER.findall(query)))


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
                        connection: str, sync: str | None = None) -> Document:
    """One destination renamed, sent through another connection and/or given another sync
    mode (``all``, the default, is left out of the document; None: unchanged)."""
    imports = imports_of(doc)
    _check_index(imports, index)
    changed = {**imports[index], "name": name.strip(), "connection": connection.strip()}
    if sync is not None:
        changed.pop("sync", None)
        if sync.strip() and sync.strip() != "all":
            changed["sync"] = sync.strip()
    imports[index] = changed
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

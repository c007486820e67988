"""A flow's definition (flows as code): validated with every problem listed.

    name: Orders to Segment
    integration: Shop
    enabled: true
    schedule: {cron: "0 * * * *", timezone: Europe/Paris}
    export:
      type: csv                      # csv | ndjson | json | database
      path: /srv/data/orders.csv     # or upload: upl_...   (files)
      options: {delimiter: ",", quote: '"', encoding: utf-8, header: true}
      key_field: order_id            # optional: the record's stable key (messageIds)
      connection: Shop DB            # database: a Database connection
      query: SELECT * FROM orders
      cursor: {column: updated_at, lag_seconds: 60}   # incremental
    steps:
      - filter: {expression: "status != 'test'"}      # records for which it is false: ignored
    imports:
      - name: Orders
        connection: Segment - production
        call: track
        mapping: {userId: customer_id, event: {constant: Order Completed}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from segbridge.apps.segment.limits import CALL_TYPES
from segbridge.core.errors import FieldProblem

FILE_TYPES = ("csv", "ndjson", "json")
EXPORT_TYPES = (*FILE_TYPES, "database")
TOP_KEYS = {"name", "integration", "enabled", "schedule", "export", "steps", "imports",
            "description"}
EXPORT_KEYS = {"type", "path", "upload", "options", "key_field", "connection", "query", "cursor"}
CSV_OPTIONS = {"delimiter", "quote", "encoding", "header", "skip_blank_lines"}
IMPORT_KEYS = {"name", "connection", "call", "mapping"}


def validate_definition(doc: Any) -> list[FieldProblem]:
    """Every problem of a flow document, each naming its place and the fix."""
    if not isinstance(doc, Mapping):
        return [FieldProblem("flow", "a flow is a mapping with name, export and imports")]
    problems = _unknown(doc, TOP_KEYS, "")
    problems += _check_name(doc.get("name"), "name")
    if not isinstance(doc.get("integration"), str) or not doc["integration"].strip():
        problems.append(FieldProblem("integration", "name the integration the flow belongs to"))
    if "enabled" in doc and not isinstance(doc["enabled"], bool):
        problems.append(FieldProblem("enabled", "use true or false"))
    problems += _check_schedule(doc.get("schedule"))
    problems += _check_export(doc.get("export"))
    problems += _check_steps(doc.get("steps", []))
    problems += _check_imports(doc.get("imports"))
    return problems


def _unknown(doc: Mapping[str, Any], known: set[str], prefix: str) -> list[FieldProblem]:
    return [FieldProblem(f"{prefix}{key}", f"unknown key; use one of: {', '.join(sorted(known))}")
            for key in doc if key not in known]


def _check_name(value: Any, field: str) -> list[FieldProblem]:
    if not isinstance(value, str) or not value.strip():
        return [FieldProblem(field, "enter a name")]
    if len(value.strip()) > 100:
        return [FieldProblem(field, "use at most 100 characters")]
    return []


def _check_schedule(schedule: Any) -> list[FieldProblem]:
    if schedule is None:
        return []
    if not isinstance(schedule, Mapping) or not isinstance(schedule.get("cron"), str):
        return [FieldProblem("schedule", "use {cron: '0 * * * *', timezone: 'Europe/Paris'}")]
    from croniter import croniter

    problems = _unknown(schedule, {"cron", "timezone"}, "schedule.")
    if not croniter.is_valid(schedule["cron"]):
        problems.append(FieldProblem("schedule.cron", f"'{schedule['cron']}' is not a cron "
                                     "expression; e.g. '0 * * * *' (hourly)"))
    problems += check_timezone(schedule.get("timezone", "UTC"), "schedule.timezone")
    return problems


def check_timezone(name: Any, field: str) -> list[FieldProblem]:
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return [FieldProblem(field, f"'{name}' is not an IANA time zone; e.g. 'Europe/Paris'")]
    return []


def _check_export(export: Any) -> list[FieldProblem]:
    if not isinstance(export, Mapping):
        return [FieldProblem("export", "describe the source: {type: csv, path: ...}")]
    problems = _unknown(export, EXPORT_KEYS, "export.")
    kind = export.get("type")
    if kind not in EXPORT_TYPES:
        return [*problems, FieldProblem("export.type", f"use one of: {', '.join(EXPORT_TYPES)}")]
    if kind in FILE_TYPES:
        problems += _check_file_export(export)
    else:
        problems += _check_database_export(export)
    key = export.get("key_field")
    if key is not None and (not isinstance(key, str) or not key):
        problems.append(FieldProblem("export.key_field", "name a field, e.g. order_id"))
    return problems


def _check_file_export(export: Mapping[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if bool(export.get("path")) == bool(export.get("upload")):
        problems.append(FieldProblem("export.path", "give either a path on the server or an "
                                                    "upload id"))
    options = export.get("options", {})
    if not isinstance(options, Mapping):
        return [*problems, FieldProblem("export.options", "use a mapping of options")]
    allowed = CSV_OPTIONS if export["type"] == "csv" else {"encoding"}
    problems += _unknown(options, allowed, "export.options.")
    for one in ("delimiter", "quote"):
        if one in options and (not isinstance(options[one], str) or len(options[one]) != 1):
            problems.append(FieldProblem(f"export.options.{one}", "use a single character"))
    if "encoding" in options:
        problems += _check_encoding(options["encoding"])
    header = options.get("header", True)
    if not isinstance(header, bool) and not (
            isinstance(header, list) and all(isinstance(h, str) for h in header)):
        problems.append(FieldProblem("export.options.header",
                                     "use true (first line), or a list of column names"))
    return problems


def _check_encoding(name: Any) -> list[FieldProblem]:
    import codecs

    try:
        codecs.lookup(str(name))
    except LookupError:
        return [FieldProblem("export.options.encoding", f"unknown encoding '{name}'")]
    return []


def _check_database_export(export: Mapping[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if not isinstance(export.get("connection"), str):
        problems.append(FieldProblem("export.connection", "name a Database connection"))
    if not isinstance(export.get("query"), str) or not export["query"].strip():
        problems.append(FieldProblem("export.query", "write the SELECT query to export"))
    cursor = export.get("cursor")
    if cursor is not None:
        if not isinstance(cursor, Mapping) or not isinstance(cursor.get("column"), str):
            problems.append(FieldProblem("export.cursor", "use {column: updated_at, "
                                                          "lag_seconds: 60}"))
        else:
            problems += _unknown(cursor, {"column", "lag_seconds"}, "export.cursor.")
            lag = cursor.get("lag_seconds", 0)
            if not isinstance(lag, int) or isinstance(lag, bool) or lag < 0:
                problems.append(FieldProblem("export.cursor.lag_seconds",
                                             "use a whole number of seconds, 0 or more"))
    return problems


def _check_steps(steps: Any) -> list[FieldProblem]:
    if not isinstance(steps, list):
        return [FieldProblem("steps", "use a list of steps, e.g. [{filter: {expression: ...}}]")]
    from segbridge.mapping import compile_expression

    problems: list[FieldProblem] = []
    for index, step in enumerate(steps):
        field = f"steps.{index}"
        expression = step.get("filter", {}).get("expression") if isinstance(step, Mapping) \
            and isinstance(step.get("filter"), Mapping) else None
        if not isinstance(expression, str) or set(step) != {"filter"}:
            problems.append(FieldProblem(field, "use {filter: {expression: \"status != 'x'\"}}"))
            continue
        try:
            compile_expression(expression)
        except ValueError as exc:
            problems.append(FieldProblem(f"{field}.filter.expression", str(exc)))
    return problems


def _check_imports(imports: Any) -> list[FieldProblem]:
    if not isinstance(imports, list) or not imports:
        return [FieldProblem("imports", "add at least one import: {name, connection, call, "
                                        "mapping}")]
    from segbridge.mapping import validate_mapping

    problems: list[FieldProblem] = []
    names: set[str] = set()
    for index, step in enumerate(imports):
        prefix = f"imports.{index}"
        if not isinstance(step, Mapping):
            problems.append(FieldProblem(prefix, "use {name, connection, call, mapping}"))
            continue
        problems += _unknown(step, IMPORT_KEYS, f"{prefix}.")
        problems += _check_name(step.get("name"), f"{prefix}.name")
        if isinstance(step.get("name"), str):
            if step["name"].casefold() in names:
                problems.append(FieldProblem(f"{prefix}.name", "import names must differ"))
            names.add(step["name"].casefold())
        if not isinstance(step.get("connection"), str):
            problems.append(FieldProblem(f"{prefix}.connection", "name a Segment connection"))
        call = step.get("call")
        if call not in CALL_TYPES:
            problems.append(FieldProblem(f"{prefix}.call", f"use one of: {', '.join(CALL_TYPES)}"))
            continue
        mapping = step.get("mapping")
        if not isinstance(mapping, Mapping):
            problems.append(FieldProblem(f"{prefix}.mapping", "map at least the ids of the call"))
            continue
        problems += [FieldProblem(f"{prefix}.{p.field}", p.message)
                     for p in validate_mapping(str(call), mapping)]
    return problems

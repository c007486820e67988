"""A webhook request's body -> its records (JSON objects).

- JSON: an object is one record; an array, or an object ``{"batch": [...]}`` (Segment's batch
  form), gives one record per item.
- NDJSON (``application/x-ndjson``, ``application/jsonl``...): one record per line.
- Form (``application/x-www-form-urlencoded``): one record, a field given twice is a list.

``Unreadable`` says what is wrong in words safe to answer (a position, never the content).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                          "application/x-jsonlines", "application/jsonlines"})
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_RECORDS = 10_000  # records one request may bring


class Unreadable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Record = dict[str, Any]


def records_of(body: bytes, content_type: str) -> list[Record]:
    """The records of a body sent with ``content_type`` (its parameters ignored)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body.strip():
        raise Unreadable("The body is empty; send a JSON object, an array of objects, NDJSON "
                         "or a form.")
    if kind == FORM_TYPE:
        return [_form(body)]
    if kind in NDJSON_TYPES:
        return _limited(_ndjson(body))
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if b"\n" in body.strip():  # several lines: NDJSON sent without its content type
            return _limited(_ndjson(body))
        raise Unreadable(f"The body is not valid JSON ({_where(exc)}).") from None
    return _limited(_json(value))


def _json(value: object) -> list[Record]:
    if isinstance(value, dict):
        batch = value.get("batch")
        if isinstance(batch, list) and len(value) <= 3:  # {"batch": [...], "sentAt", ...}
            return _objects(batch, "item")
        return [value]
    if isinstance(value, list):
        return _objects(value, "item")
    raise Unreadable("The body is JSON but neither an object nor an array of objects.")


def _objects(items: list[Any], what: str) -> list[Record]:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise Unreadable(f"{what.capitalize()} {index + 1} is not a JSON object; every "
                             "record must be one.")
    return items


def _ndjson(body: bytes) -> list[Record]:
    records: list[Record] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise Unreadable(f"Line {number} is not valid JSON.") from None
        if not isinstance(value, dict):
            raise Unreadable(f"Line {number} is not a JSON object; every record must be one.")
        records.append(value)
    return records


def _form(body: bytes) -> Record:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise Unreadable("The form body is not valid (application/x-www-form-urlencoded in "
                         "UTF-8).") from None
    record: Record = {}
    for name, value in pairs:
        if name in record:
            earlier = record[name]
            record[name] = [*earlier, value] if isinstance(earlier, list) else [earlier, value]
        else:
            record[name] = value
    return record


def _limited(records: list[Record]) -> list[Record]:
    if not records:
        raise Unreadable("The body has no records.")
    if len(records) > MAX_RECORDS:
        raise Unreadable(f"The body has {len(records)} records; send at most {MAX_RECORDS} "
                         "per request.")
    return records


def _where(exc: orjson.JSONDecodeError) -> str:
    return f"line {exc.lineno}, column {exc.colno}"

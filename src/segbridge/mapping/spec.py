"""Read and check a mapping spec once, listing every problem; produce a MappingPlan.

Problems are named by where they are in the spec: "mapping.userId",
"mapping.timestamp.format", "mapping.properties.fields.total.expression", "call".
Constants of text fields and timestamps are converted here, once, so a bad constant is a
spec problem and not a failure of every record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from segbridge.core.errors import FieldProblem
from segbridge.mapping.calls import CALL_FIELDS, COMMON_FIELDS, IDS, TEXT_FIELDS
from segbridge.mapping.expressions import ExpressionSyntaxError, parse
from segbridge.mapping.sources import Source
from segbridge.mapping.timestamps import (
    TimestampError,
    converter,
    format_problem,
    zone_named,
    zone_problem,
)
from segbridge.mapping.values import MISSING, id_text, is_empty, json_problem, kind_of

KINDS: Final = ("field", "constant", "expression")
SOURCE_KEYS: Final = (*KINDS, "required", "default")
PAYLOADS: Final = ("traits", "properties")
OBJECTS: Final = (*PAYLOADS, "context", "integrations")
SET_BY_SEGBRIDGE: Final = ("type", "messageId", "sentAt")
SOURCE_HINT: Final = ("use a field path (text such as customer.id), or {field: ...}, "
                      "{constant: ...} or {expression: ...}")
OBJECT_HINT: Final = ("use {fields: {name: source, ...}}, {constant: {...}}, {field: ...} or "
                      "{expression: ...}")
EXAMPLES: Final = {
    "event": "event: {constant: Order Completed}",
    "groupId": "groupId: company_id",
    "previousId": "previousId: old_id",
    "userId": "userId: customer_id",
}


@dataclass(frozen=True, slots=True)
class TimestampSpec:
    source: Source
    convert: Callable[[Any], str]


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """An object of the call: from one source, or built from chosen fields (each a source
    or a nested ObjectSpec), plus all other top-level fields of the record if asked."""

    source: Source | None = None
    fields: tuple[tuple[str, Source | ObjectSpec], ...] = ()
    all_other_fields: bool = False
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MappingPlan:
    """A checked mapping. ``texts`` holds the text fields with their final ``required``;
    ``one_of`` is non-empty when userId and anonymousId are both mapped and optional, so
    each record must have one of them. ``used``: top-level record fields any entry reads;
    ``whole_record``: an entry may read any field (``all_other_fields``, or an expression
    naming ``record``)."""

    call_type: str
    texts: dict[str, Source]
    one_of: tuple[str, ...]
    timestamp: TimestampSpec | None
    objects: dict[str, ObjectSpec]
    used: frozenset[str]
    whole_record: bool = False


def read_spec(call_type: str, spec: Any) -> tuple[MappingPlan | None, list[FieldProblem]]:
    """The plan of ``spec`` for ``call_type``, or None and the problems (all of them)."""
    reader = _Reader()
    plan = reader.read(call_type, spec)
    return (plan if not reader.problems else None), reader.problems


class _Reader:
    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []
        self.used: set[str] = set()
        self.whole_record = False

    def problem(self, field: str, message: str) -> None:
        self.problems.append(FieldProblem(field, message))

    # -- the whole spec -------------------------------------------------------------------

    def read(self, call_type: str, spec: Any) -> MappingPlan | None:
        call = CALL_FIELDS.get(call_type)
        if call is None:
            self.problem("call", f"use one of: {', '.join(CALL_FIELDS)}")
        if not isinstance(spec, Mapping):
            self.problem("mapping", "use a mapping of call fields, e.g. {userId: customer_id}")
            return None
        allowed = call.keys if call else (*TEXT_FIELDS, *COMMON_FIELDS, *PAYLOADS)
        for key in spec:
            if key not in allowed:
                self.problem(f"mapping.{key}", _unknown_key(call_type, key, allowed))
        present = [key for key in spec if key in allowed]
        texts: dict[str, Source] = {}
        for key in (k for k in TEXT_FIELDS if k in present):
            if (source := self.text_source(spec[key], f"mapping.{key}")) is not None:
                texts[key] = source
        timestamp = self.timestamp(spec["timestamp"]) if "timestamp" in present else None
        objects: dict[str, ObjectSpec] = {}
        for key in (k for k in OBJECTS if k in present):
            if (obj := self.object(spec[key], f"mapping.{key}", key)) is not None:
                objects[key] = obj
        one_of: tuple[str, ...] = ()
        if call is not None:
            texts, one_of = self.requirements(call_type, spec, texts)
        return MappingPlan(call_type, texts, one_of, timestamp, objects, frozenset(self.used),
                           self.whole_record)

    def requirements(self, call_type: str, spec: Mapping[str, Any],
                     texts: dict[str, Source]) -> tuple[dict[str, Source], tuple[str, ...]]:
        """Check the fields the call needs; set each text field's final ``required``."""
        call = CALL_FIELDS[call_type]
        needed = set(call.requires)
        for name in call.requires:
            if name not in spec:
                self.problem(f"mapping.{name}", f"{call_type} calls need {name}: map it, e.g. "
                                                f"{EXAMPLES[name]}")
        mapped_ids = [name for name in call.one_of if name in spec]
        if call.one_of and not mapped_ids:
            self.problem("mapping.userId", f"{call_type} calls need userId or anonymousId: "
                                           "map at least one")
        if len(mapped_ids) == 1:
            needed.add(mapped_ids[0])
        for name in (n for n in TEXT_FIELDS if n in needed):
            if name in texts and texts[name].required is False:
                other = "" if name not in IDS or not call.one_of else \
                    f" unless {IDS[1 - IDS.index(name)]} is mapped too"
                self.problem(f"mapping.{name}.required", f"{call_type} calls need {name}"
                                                         f"{other}: remove required: false")
        final = {name: replace(source, required=bool(source.required) or name in needed)
                 for name, source in texts.items()}
        optional_ids = len(mapped_ids) == 2 and not any(final[n].required for n in mapped_ids
                                                        if n in final)
        return final, (tuple(mapped_ids) if optional_ids else ())

    # -- sources --------------------------------------------------------------------------

    def source(self, raw: Any, where: str, extra: tuple[str, ...] = ()) -> Source | None:
        if isinstance(raw, str):
            return self.field(raw, where)
        if not isinstance(raw, Mapping):
            self.problem(where, SOURCE_HINT)
            return None
        allowed = (*SOURCE_KEYS, *extra)
        for key in raw:
            if key not in allowed:
                self.problem(f"{where}.{key}", f"unknown key; use {', '.join(allowed)}")
        kinds = [kind for kind in KINDS if kind in raw]
        if len(kinds) != 1:
            self.problem(where, "use exactly one of field, constant or expression")
            return None
        required = raw.get("required")
        if required is not None and not isinstance(required, bool):
            self.problem(f"{where}.required", "use true or false")
            required = None
        default = raw.get("default", MISSING)
        if default is not MISSING and (problem := json_problem(default)):
            self.problem(f"{where}.default", f"the default {problem}")
            default = MISSING
        source = self.kind(kinds[0], raw[kinds[0]], f"{where}.{kinds[0]}")
        return None if source is None else replace(source, required=required, default=default)

    def kind(self, kind: str, raw: Any, where: str) -> Source | None:
        if kind == "field":
            return self.field(raw, where)
        if kind == "constant":
            if problem := json_problem(raw):
                self.problem(where, f"the constant {problem}")
                return None
            return Source("constant", value=_json_copy(raw))
        if not isinstance(raw, str):
            self.problem(where, "write the expression as text, e.g. \"lower(email)\"")
            return None
        try:
            expression = parse(raw)
        except ExpressionSyntaxError as exc:
            self.problem(where, str(exc))
            return None
        self.used.update(expression.fields)
        self.whole_record = self.whole_record or expression.whole_record
        return Source("expression", raw, expression=expression)

    def field(self, raw: Any, where: str) -> Source | None:
        if not isinstance(raw, str) or not raw or "" in raw.split("."):
            self.problem(where, "use a field name or a dotted path such as customer.id or "
                                "items.0.sku")
            return None
        path = tuple(raw.split("."))
        self.used.update((path[0], raw))
        return Source("field", raw, path=path)

    def text_source(self, raw: Any, where: str) -> Source | None:
        """A source of a text field: constants and defaults converted to text here."""
        source = self.source(raw, where)
        if source is None:
            return None
        if source.kind == "constant":
            value = self.as_text(source.value, f"{where}.constant", "constant")
            if value is None:
                return None
            source = replace(source, value=value)
        if source.default is not MISSING:
            default = self.as_text(source.default, f"{where}.default", "default")
            source = replace(source, default=MISSING if default is None else default)
        return source

    def as_text(self, value: Any, where: str, what: str) -> str | None:
        if is_empty(value):
            self.problem(where, f"the {what} is empty")
            return None
        try:
            return id_text(value)
        except ValueError as exc:
            self.problem(where, f"the {what} {exc}; use text or a number")
            return None

    # -- timestamp ------------------------------------------------------------------------

    def timestamp(self, raw: Any) -> TimestampSpec | None:
        where = "mapping.timestamp"
        source = self.source(raw, where, extra=("format", "timezone"))
        fmt = raw.get("format", "iso") if isinstance(raw, Mapping) else "iso"
        zone_name = raw.get("timezone") if isinstance(raw, Mapping) else None
        ok = source is not None
        if problem := format_problem(fmt):
            self.problem(f"{where}.format", problem)
            ok = False
        if zone_name is not None:
            if problem := zone_problem(zone_name):
                self.problem(f"{where}.timezone", problem)
                ok = False
            elif fmt in ("unix", "unix_ms"):
                self.problem(f"{where}.timezone", f"{fmt} times are in UTC already: remove "
                                                  "timezone")
                ok = False
        if not ok or source is None:
            return None
        convert = converter(fmt, zone_named(zone_name) if zone_name else None)
        key = "constant"
        try:
            if source.kind == "constant":
                source = replace(source, value=convert(source.value))
            key = "default"
            if source.default is not MISSING:
                source = replace(source, default=convert(source.default))
        except TimestampError as exc:
            self.problem(f"{where}.{key}", str(exc))
            return None
        return TimestampSpec(source, convert)

    # -- objects --------------------------------------------------------------------------

    def object(self, raw: Any, where: str, key: str, *, top: bool = True) -> ObjectSpec | None:
        if isinstance(raw, Mapping) and any(k in raw for k in
                                            ("fields", "all_other_fields", "exclude")):
            return self.fields_form(raw, where, key, top=top)
        if not isinstance(raw, str | Mapping):
            self.problem(where, OBJECT_HINT)
            return None
        source = self.source(raw, where)
        if source is None:
            return None
        if source.kind == "constant" and not isinstance(source.value, dict):
            self.problem(f"{where}.constant", f"use an object, not {kind_of(source.value)}")
            return None
        if source.default is not MISSING and not isinstance(source.default, dict):
            self.problem(f"{where}.default", f"use an object, not {kind_of(source.default)}")
            return None
        if key == "integrations" and source.kind == "constant":
            self.integrations(source.value, f"{where}.constant")
        return ObjectSpec(source=source)

    def fields_form(self, raw: Mapping[str, Any], where: str, key: str,
                    *, top: bool) -> ObjectSpec | None:
        allowed = ("fields", "all_other_fields", "exclude") if top else ("fields",)
        for name in raw:
            if name not in allowed:
                self.problem(f"{where}.{name}", f"unknown key; use {', '.join(allowed)}")
        others = raw.get("all_other_fields", False)
        if not isinstance(others, bool):
            self.problem(f"{where}.all_other_fields", "use true or false")
            others = False
        self.whole_record = self.whole_record or others
        exclude = self.exclude(raw, where, others)
        chosen = raw.get("fields", {})
        if not isinstance(chosen, Mapping):
            self.problem(f"{where}.fields", "use a mapping of names to sources, e.g. "
                                            "{total: amount}")
            return None
        if not chosen and not others:
            self.problem(f"{where}.fields", "map at least one field or set "
                                            "all_other_fields: true")
        fields = tuple((name, entry) for name, raw_entry in chosen.items()
                       if (entry := self.entry(name, raw_entry, f"{where}.fields", key))
                       is not None)
        return ObjectSpec(None, fields, others, exclude)

    def entry(self, name: Any, raw: Any, where: str, key: str) -> Source | ObjectSpec | None:
        if not isinstance(name, str) or not name:
            self.problem(f"{where}.{name}", "a field name is text that is not empty")
            return None
        if isinstance(raw, Mapping) and "fields" in raw:
            return self.object(raw, f"{where}.{name}", key, top=False)
        return self.source(raw, f"{where}.{name}")

    def exclude(self, raw: Mapping[str, Any], where: str, others: bool) -> frozenset[str]:
        if "exclude" not in raw:
            return frozenset()
        exclude = raw["exclude"]
        if not isinstance(exclude, list) or not all(isinstance(n, str) for n in exclude):
            self.problem(f"{where}.exclude", "use a list of field names, e.g. [password]")
            return frozenset()
        if not others:
            self.problem(f"{where}.exclude", "exclude works with all_other_fields: true")
        return frozenset(exclude)

    def integrations(self, value: dict[str, Any], where: str) -> None:
        for name, setting in value.items():
            if not isinstance(setting, bool | dict):
                self.problem(f"{where}.{name}", "use true, false or an object of options")


def _unknown_key(call_type: str, key: Any, allowed: tuple[str, ...]) -> str:
    if key in SET_BY_SEGBRIDGE:
        return f"{key} is set by segbridge, not mapped: remove it"
    if key in PAYLOADS and call_type in CALL_FIELDS:
        payload = CALL_FIELDS[call_type].payload
        if payload is None:
            return f"{call_type} calls take no traits or properties: remove it"
        return f"{call_type} calls take {payload}, not {key}"
    if key in TEXT_FIELDS:
        return f"{call_type} calls take no {key}: remove it"
    return f"unknown key; use {', '.join(allowed)}"


def _json_copy(value: Any) -> Any:
    """A private copy of a JSON constant, so later changes to the spec do not leak in."""
    if isinstance(value, dict):
        return {key: _json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_copy(item) for item in value]
    return value

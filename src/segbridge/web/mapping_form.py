"""The mapping editor's form <-> a mapping spec (docs/mapping.md), with no I/O.

The form names its controls so that a posted form reads back without a schema:

    call, name, connection          the import
    f.<key>.kind|value|default|required    one call field (userId, event, timestamp, ...);
    f.timestamp.format|timezone            kind: field, constant, json, expression or none
    p.<i>.name|kind|value           the payload's (traits/properties) chosen fields, as rows
    p.all_other_fields, p.exclude   "all other fields" and the exclusions (comma-separated)
    c.<i>.name|kind|value           the context's chosen fields
    mode=yaml, yaml                 the mapping written as YAML instead of the form

Problems are put in *slots*, the names the editor shows errors under: ``f.userId``,
``f.timestamp.format``, ``p.2`` (a row), ``p.exclude``, ``p``, ``c.0``, ``yaml``,
``mapping`` (anything else about the mapping). A spec the form cannot show exactly (a nested
object, a non-text default, an unknown key) is opened as YAML so nothing is lost
(``form_from_mapping`` says whether it fits).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from segbridge.core.errors import FieldProblem, ValidationFailed
from segbridge.core.yaml_input import load_yaml
from segbridge.mapping.calls import CALL_FIELDS, TEXT_FIELDS
from segbridge.mapping.expressions import ExpressionSyntaxError, parse

KINDS: Final = ("field", "constant", "json", "expression")
NOT_MAPPED: Final = "none"
KIND_LABELS: Final = {"field": "Field", "constant": "Constant (text)",
                      "json": "Constant (number, true/false, JSON)",
                      "expression": "Expression", NOT_MAPPED: "Not mapped"}
TIMESTAMP: Final = "timestamp"
INTEGRATIONS: Final = "integrations"
SINGLE_FIELDS: Final = (*TEXT_FIELDS, TIMESTAMP, INTEGRATIONS)
OBJECT_PREFIXES: Final = {"p": "payload", "c": "context"}
YAML_MODE: Final = "yaml"
_ROW = re.compile(r"([pc])\.(\d{1,3})\.(name|kind|value)")
MAX_ROWS: Final = 200


@dataclass
class SourceForm:
    """One call field: where its value comes from."""

    kind: str = NOT_MAPPED
    value: str = ""
    default: str = ""
    required: bool = False
    format: str = ""    # timestamp only
    timezone: str = ""  # timestamp only


@dataclass
class Row:
    """A chosen field of an object: its name in the call and its source."""

    name: str = ""
    kind: str = "field"
    value: str = ""

    @property
    def blank(self) -> bool:
        return not self.name.strip() and not self.value.strip()


@dataclass
class ObjectForm:
    rows: list[Row] = field(default_factory=list)
    all_other_fields: bool = False
    exclude: str = ""

    @property
    def excluded(self) -> list[str]:
        return [name.strip() for name in self.exclude.split(",") if name.strip()]

    @property
    def empty(self) -> bool:
        return all(row.blank for row in self.rows) and not self.all_other_fields \
            and not self.excluded


@dataclass
class MappingForm:
    call: str = "track"
    fields: dict[str, SourceForm] = field(default_factory=dict)
    payload: ObjectForm = field(default_factory=ObjectForm)
    context: ObjectForm = field(default_factory=ObjectForm)
    yaml_mode: bool = False
    yaml: str = ""

    def source(self, key: str) -> SourceForm:
        return self.fields.get(key) or SourceForm()


@dataclass(frozen=True)
class FieldInfo:
    """A call field as the editor lists it."""

    key: str
    label: str
    need: str  # "" (optional), "required", or "required: this or anonymousId"


@dataclass(frozen=True)
class ExpressionIssue:
    """A refused expression, with the line and column (both 1-based) its problem is at."""

    text: str
    message: str
    position: int
    line: int
    column: int

    @property
    def line_text(self) -> str:
        return self.text.split("\n")[self.line - 1]


# ---- what each call shows -------------------------------------------------------------------

def call_fields(call: str) -> list[FieldInfo]:
    """The fields the editor shows for ``call``, in the order of the call (payload aside)."""
    spec = CALL_FIELDS.get(call) or CALL_FIELDS["track"]
    shown = []
    for key in spec.takes:
        need = ""
        if key in spec.requires:
            need = "required"
        elif key in spec.one_of:
            other = next(name for name in spec.one_of if name != key)
            need = f"required: this or {other}"
        shown.append(FieldInfo(key, key, need))
    shown.append(FieldInfo(TIMESTAMP, TIMESTAMP, ""))
    return shown


def payload_key(call: str) -> str | None:
    spec = CALL_FIELDS.get(call)
    return spec.payload if spec else None


# ---- form -> mapping ------------------------------------------------------------------------

def mapping_from_form(form: MappingForm) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The mapping the form describes, and the problems only the form can have (a constant
    that is not JSON, YAML that is not a mapping), each at its slot."""
    if form.yaml_mode:
        return _from_yaml(form.yaml)
    problems: list[FieldProblem] = []
    mapping: dict[str, Any] = {}
    spec = CALL_FIELDS.get(form.call)
    keys = (*spec.takes, TIMESTAMP, INTEGRATIONS) if spec else SINGLE_FIELDS
    for key in keys:
        source = form.source(key)
        if source.kind in KINDS:
            value = _source(source, f"f.{key}", problems, timestamp=key == TIMESTAMP)
            if value is not None:
                mapping[key] = value
    payload = payload_key(form.call)
    if payload and not form.payload.empty:
        mapping[payload] = _object(form.payload, "p", problems)
    if not form.context.empty:
        mapping["context"] = _object(form.context, "c", problems)
    return mapping, problems


def _from_yaml(text: str) -> tuple[dict[str, Any], list[FieldProblem]]:
    try:
        loaded = load_yaml(text, YAML_MODE) if text.strip() else {}
    except ValidationFailed as exc:
        return {}, exc.problems
    if not isinstance(loaded, dict):
        return {}, [FieldProblem(YAML_MODE, "write a mapping of call fields, e.g. "
                                            "userId: customer_id")]
    return loaded, []


def _value(kind: str, text: str, slot: str, problems: list[FieldProblem]) -> Any:
    if kind != "json":
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        problems.append(FieldProblem(slot, "write the constant as JSON: a number (42), true, "
                                           "false, null, \"text\", [..] or {..}"))
        return None


def _source(source: SourceForm, slot: str, problems: list[FieldProblem], *,
            timestamp: bool = False) -> Any:
    kind = "constant" if source.kind == "json" else source.kind
    value = _value(source.kind, source.value.strip() if source.kind != "constant"
                   else source.value, slot, problems)
    options: dict[str, Any] = {}
    if source.default != "":
        options["default"] = source.default
    if source.required:
        options["required"] = True
    if timestamp:
        if source.format.strip():
            options["format"] = source.format.strip()
        if source.timezone.strip():
            options["timezone"] = source.timezone.strip()
    if kind == "field" and not options:
        return value
    return {kind: value, **options}


def _object(obj: ObjectForm, prefix: str, problems: list[FieldProblem]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for index, row in enumerate(obj.rows):
        if row.blank:
            continue
        slot = f"{prefix}.{index}"
        name = row.name.strip() or (row.value.strip() if row.kind == "field" else "")
        if not name:
            problems.append(FieldProblem(slot, "name the field in the call"))
            continue
        if name in fields:
            problems.append(FieldProblem(slot, f"'{name}' is chosen twice: keep one"))
            continue
        value = _value(row.kind, row.value.strip() if row.kind != "constant" else row.value,
                       slot, problems)
        kind = "constant" if row.kind == "json" else row.kind
        fields[name] = value if kind == "field" else {kind: value}
    result: dict[str, Any] = {"fields": fields}
    if obj.all_other_fields:
        result["all_other_fields"] = True
    if obj.excluded:
        result["exclude"] = obj.excluded
    return result


# ---- mapping -> form ------------------------------------------------------------------------

def form_from_mapping(call: str, mapping: object) -> tuple[MappingForm, bool]:
    """The form showing ``mapping``, and whether it shows all of it exactly (if not, the
    editor opens in YAML mode with the mapping as written)."""
    form = MappingForm(call=call, yaml=mapping_yaml(mapping))
    if not isinstance(mapping, Mapping):
        form.yaml_mode = True
        return form, False
    for key in SINGLE_FIELDS:
        if key in mapping and (source := _read_source(mapping[key])) is not None:
            form.fields[key] = source
    payload = payload_key(call)
    if payload and payload in mapping:
        form.payload = _read_object(mapping[payload])
    if "context" in mapping:
        form.context = _read_object(mapping["context"])
    rebuilt, problems = mapping_from_form(form)
    fits = not problems and _canonical(rebuilt) == _canonical(dict(mapping))
    form.yaml_mode = not fits
    return form, fits


def _read_source(raw: Any) -> SourceForm | None:
    if isinstance(raw, str):
        return SourceForm("field", raw)
    if not isinstance(raw, Mapping):
        return None
    kinds = [kind for kind in ("field", "constant", "expression") if kind in raw]
    if len(kinds) != 1:
        return None
    kind, value = kinds[0], raw[kinds[0]]
    if kind == "constant" and not isinstance(value, str):
        source = SourceForm("json", json.dumps(value))
    else:
        source = SourceForm(kind, value if isinstance(value, str) else json.dumps(value))
    default = raw.get("default")
    source.default = default if isinstance(default, str) else ""
    source.required = raw.get("required") is True
    source.format = str(raw.get("format", ""))
    source.timezone = str(raw.get("timezone", ""))
    return source


def _read_object(raw: Any) -> ObjectForm:
    if not isinstance(raw, Mapping):
        return ObjectForm()
    rows = []
    chosen = raw.get("fields")
    for name, entry in (chosen.items() if isinstance(chosen, Mapping) else ()):
        source = _read_source(entry)
        if source is not None:
            rows.append(Row(str(name), source.kind, source.value))
    exclude = raw.get("exclude")
    return ObjectForm(rows, raw.get("all_other_fields") is True,
                      ", ".join(str(n) for n in exclude) if isinstance(exclude, list) else "")


def _canonical(value: Any) -> Any:
    """A spec with the shorthand spelled one way: ``{field: x}`` alone is ``x``."""
    if isinstance(value, Mapping):
        if set(value) == {"field"} and isinstance(value["field"], str):
            return value["field"]
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def mapping_yaml(mapping: object) -> str:
    if mapping is None or mapping == {}:
        return ""
    text: str = yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True,
                               default_flow_style=False)
    return text


# ---- posted form -> form, and back ----------------------------------------------------------

def form_from_post(data: Mapping[str, str]) -> MappingForm:
    """The form as the browser posted it (unknown keys are ignored)."""
    form = MappingForm(call=data.get("call", "track"), yaml=data.get("yaml", ""),
                       yaml_mode=data.get("mode") == YAML_MODE)
    for key in SINGLE_FIELDS:
        kind = data.get(f"f.{key}.kind", NOT_MAPPED)
        form.fields[key] = SourceForm(
            kind if kind in KINDS else NOT_MAPPED, data.get(f"f.{key}.value", ""),
            data.get(f"f.{key}.default", ""), bool(data.get(f"f.{key}.required")),
            data.get(f"f.{key}.format", ""), data.get(f"f.{key}.timezone", ""))
    rows: dict[str, dict[int, Row]] = {"p": {}, "c": {}}
    for key, value in data.items():
        match = _ROW.fullmatch(key)
        if match and int(match.group(2)) < MAX_ROWS:
            row = rows[match.group(1)].setdefault(int(match.group(2)), Row())
            setattr(row, match.group(3), value if match.group(3) != "kind" or value in KINDS
                    else "field")
    form.payload = ObjectForm([rows["p"][i] for i in sorted(rows["p"])],
                              bool(data.get("p.all_other_fields")), data.get("p.exclude", ""))
    form.context = ObjectForm([rows["c"][i] for i in sorted(rows["c"])])
    return form


def post_data(form: MappingForm) -> dict[str, str]:
    """What the browser posts for ``form`` (the inverse of ``form_from_post``)."""
    data = {"call": form.call, "yaml": form.yaml}
    if form.yaml_mode:
        data["mode"] = YAML_MODE
    for key, source in form.fields.items():
        data |= {f"f.{key}.kind": source.kind, f"f.{key}.value": source.value,
                 f"f.{key}.default": source.default, f"f.{key}.format": source.format,
                 f"f.{key}.timezone": source.timezone}
        if source.required:
            data[f"f.{key}.required"] = "on"
    for prefix, obj in (("p", form.payload), ("c", form.context)):
        for index, row in enumerate(obj.rows):
            data |= {f"{prefix}.{index}.name": row.name, f"{prefix}.{index}.kind": row.kind,
                     f"{prefix}.{index}.value": row.value}
    if form.payload.all_other_fields:
        data["p.all_other_fields"] = "on"
    data["p.exclude"] = form.payload.exclude
    return data


# ---- problems at their slots ----------------------------------------------------------------

def import_problems(problems: Iterable[FieldProblem], index: int) -> list[FieldProblem]:
    """The problems of a flow document, those of import ``index`` relative to it
    (``imports.0.mapping.event`` -> ``mapping.event``); others keep their path."""
    prefix = f"imports.{index}."
    return [FieldProblem(p.field.removeprefix(prefix), p.message) for p in problems]


def slot_of(path: str, form: MappingForm) -> str:
    """Where the editor shows a problem at ``path`` (relative to the import)."""
    parts = path.split(".")
    if parts[0] != "mapping" or len(parts) < 2:
        return path
    if form.yaml_mode:
        return YAML_MODE
    key, rest = parts[1], parts[2:]
    if key in TEXT_FIELDS or key == INTEGRATIONS:
        return f"f.{key}"
    if key == TIMESTAMP:
        return f"f.timestamp.{rest[0]}" if rest and rest[0] in ("format", "timezone") \
            else "f.timestamp"
    prefix = "p" if key == payload_key(form.call) else "c" if key == "context" else None
    if prefix is None:
        return "mapping"
    obj = form.payload if prefix == "p" else form.context
    if rest and rest[0] in ("all_other_fields", "exclude") and prefix == "p":
        return f"p.{rest[0]}"
    if len(rest) > 1 and rest[0] == "fields":
        named = ".".join(rest[1:])
        for index, row in enumerate(obj.rows):
            name = row.name.strip() or row.value.strip()
            if named == name or named.startswith(name + "."):
                return f"{prefix}.{index}"
    return prefix


def expression_issues(form: MappingForm) -> dict[str, ExpressionIssue]:
    """The refused expressions of the form, by slot, with where each problem is."""
    if form.yaml_mode:
        return {}
    texts = {f"f.{key}": source.value for key, source in form.fields.items()
             if source.kind == "expression"}
    for prefix, obj in (("p", form.payload), ("c", form.context)):
        texts |= {f"{prefix}.{i}": row.value for i, row in enumerate(obj.rows)
                  if row.kind == "expression" and not row.blank}
    issues = {}
    for slot, text in texts.items():
        try:
            parse(text.strip())
        except ExpressionSyntaxError as exc:
            issues[slot] = _issue(text.strip(), exc)
    return issues


def _issue(text: str, exc: ExpressionSyntaxError) -> ExpressionIssue:
    before = text[:max(exc.position - 1, 0)]
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return ExpressionIssue(text, exc.message, exc.position, line, column)


def errors_by_slot(problems: Iterable[FieldProblem], form: MappingForm,
                   issues: Mapping[str, ExpressionIssue]) -> dict[str, str]:
    """Each slot's problems as one text; an expression's own problem is left to its issue
    (shown with a marker at its position)."""
    found: dict[str, list[str]] = {}
    for problem in problems:
        slot = slot_of(problem.field, form)
        if slot in issues and problem.field.endswith(".expression"):
            continue
        found.setdefault(slot, []).append(problem.message)
    return {slot: "; ".join(dict.fromkeys(messages)) for slot, messages in found.items()}


# ---- sample records -------------------------------------------------------------------------

def field_paths(records: Iterable[Mapping[str, Any] | None], depth: int = 4) -> list[str]:
    """Every field path of the records, nested ones dotted (``customer.id``,
    ``items.0.sku``: a list's first element stands for all), in the order first seen."""
    seen: dict[str, None] = {}

    def walk(data: Mapping[str, Any], prefix: str, level: int) -> None:
        for key, value in data.items():
            path = f"{prefix}{key}"
            seen.setdefault(path)
            if level >= depth:
                continue
            if isinstance(value, Mapping):
                walk(value, f"{path}.", level + 1)
            elif isinstance(value, list) and value and isinstance(value[0], Mapping):
                walk(value[0], f"{path}.0.", level + 1)

    for record in records:
        if isinstance(record, Mapping):
            walk(record, "", 1)
    return list(seen)

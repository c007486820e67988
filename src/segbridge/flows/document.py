"""The flow document (flows as code) as a typed model, checked with every problem at once.

A flow arrives as JSON (the API) or YAML (import, the CLI); ``parse_flow_document`` turns it
into a ``FlowDocument`` or lists every problem, each at its field path (``export.options.
delimiter``, ``imports.0.mapping.userId``) and phrased as what to write instead. Pydantic
checks the shape; the messages stay ours: each part of the document says what to write when
it is not a mapping (``shape``), and what to write for a field that is missing or of the wrong
type (``hints``); the checks pydantic cannot make (a cron, a time zone, an expression, a
mapping, unique import names) raise ``problem(...)`` with their own words.

The export is a union discriminated by ``type``: one model per export kind (``EXPORT_KINDS``).
A new kind (an application that can be a source, e.g. ``parquet``) is one more ``ExportBase``
subclass with ``type: Literal["parquet"]`` registered in ``EXPORT_KINDS`` beside the
application's ``export_kinds``; nothing else here changes.

The stored definition stays the document as written (the run engine reads it); documents
written before this model keep importing: keys of another export kind in an export (``query``
in a CSV export) are kept and ignored, as they always were.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Mapping
from typing import Annotated, ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from segbridge.apps.segment.limits import CALL_TYPES
from segbridge.core.errors import FieldProblem, ValidationFailed

PROBLEM = "flow_problem"  # the pydantic error type of a problem phrased in our words
STORED = "stored"  # validation context: a stored document, checked when it was saved
Location = tuple[int | str, ...]


def problem(message: str) -> PydanticCustomError:
    """A problem of the value being validated, in our words (at the value's location)."""
    return PydanticCustomError(PROBLEM, "{message}", {"message": message})


def _located(location: Location, message: str, value: object = None) -> InitErrorDetails:
    return InitErrorDetails(type=problem(message), loc=location, input=value)


def _checked(info: ValidationInfo) -> bool:
    """False for a stored document: its expressions, crons and mappings were checked when
    it was saved (a rule that tightens later must not make a saved flow unreadable)."""
    return not (isinstance(info.context, Mapping) and info.context.get(STORED))


class DocumentPart(BaseModel):
    """A mapping of the document: its unknown keys are refused, and every problem pydantic
    finds is reworded with the part's own ``shape`` and ``hints``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    shape: ClassVar[str] = "use a mapping"  # what to write when the part is not one
    hints: ClassVar[Mapping[str, str]] = {}  # field -> what to write (missing, wrong type)
    problem_order: ClassVar[tuple[str, ...]] = ()  # fields whose problems come first

    @classmethod
    def shape_problem(cls, data: object) -> bool:
        """True when the part is not even the right shape: one problem, at the part."""
        return not isinstance(data, Mapping)

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        """The problems that need more than one field (or the raw document) to see."""
        return []

    @classmethod
    def unchecked(cls, data: Mapping[str, object]) -> set[str]:
        """Fields not checked because a field they depend on is wrong (a mapping without a
        call type): their problems would only follow from that one."""
        return set()

    @classmethod
    def known_keys(cls) -> list[str]:
        return sorted(field.alias or name for name, field in cls.model_fields.items())

    @model_validator(mode="wrap")
    @classmethod
    def _in_product_words(cls, data: object, handler: ModelWrapValidatorHandler[Self],
                          info: ValidationInfo) -> Self:
        if isinstance(data, cls):
            return data
        if cls.shape_problem(data):
            raise problem(cls.shape)
        assert isinstance(data, Mapping)
        problems = cls.more_problems(data, info)
        try:
            part = handler(data)
        except ValidationError as exc:
            unchecked = cls.unchecked(data)
            problems = [*(one for one in cls._reworded(exc)
                          if not (one["loc"] and one["loc"][0] in unchecked)), *problems]
            raise cls._all_at_once(data, problems) from None
        if problems:
            raise cls._all_at_once(data, problems)
        return part

    @classmethod
    def _all_at_once(cls, data: Mapping[str, object],
                     problems: list[InitErrorDetails]) -> ValidationError:
        """Every problem, unknown keys first, then field by field in the document's order."""
        order = [*cls.problem_order, *cls.model_fields]

        def place(one: InitErrorDetails) -> tuple[int, int]:
            field = one["loc"][0] if one["loc"] else None
            if isinstance(field, str) and field not in order:
                return (0, list(data).index(field) if field in data else 0)
            return (1, order.index(field) if field in order else len(order))

        return ValidationError.from_exception_data(cls.__name__,
                                                   sorted(_unique(problems), key=place))

    # No return annotation, on purpose: pydantic then describes the part's JSON by its
    # fields (an annotated ``dict`` would describe it as any mapping in the OpenAPI document).
    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """The part as JSON with only the keys it was written with (no defaults added)."""
        written = set(self.model_fields_set) | set(self.model_extra or {})
        return {key: value for key, value in handler(self).items() if key in written}

    @classmethod
    def _reworded(cls, exc: ValidationError) -> Iterator[InitErrorDetails]:
        for error in exc.errors():
            location = tuple(error["loc"])
            if error["type"] == PROBLEM:
                yield _located(location, error["msg"], error.get("input"))
            elif error["type"] == "extra_forbidden":
                yield _located(location, f"unknown key; use one of: "
                                         f"{', '.join(cls.known_keys())}")
            elif location and location[0] in cls.hints:
                yield _located(location[:1], cls.hints[str(location[0])], error.get("input"))
            else:
                yield _located(location, error["msg"], error.get("input"))


def _unique(problems: list[InitErrorDetails]) -> list[InitErrorDetails]:
    """One problem per place and message (a union's branches fail alike)."""
    seen: set[tuple[Location, str]] = set()
    kept = []
    for one in problems:
        key = (tuple(one["loc"]), str(one["type"]))
        if key not in seen:
            seen.add(key)
            kept.append(one)
    return kept


# ---- values ---------------------------------------------------------------------------------

def _name(value: str) -> str:
    if not value.strip():
        raise problem("enter a name")
    if len(value.strip()) > 100:
        raise problem("use at most 100 characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("blank")  # reworded with the field's hint
    return value


def _cron(value: str, info: ValidationInfo) -> str:
    from croniter import croniter

    if _checked(info) and not croniter.is_valid(value):
        raise problem(f"'{value}' is not a cron expression; e.g. '0 * * * *' (hourly)")
    return value


def _time_zone(value: object) -> object:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise problem(f"'{value}' is not an IANA time zone; e.g. 'Europe/Paris'") from None
    return value


def _encoding(value: object) -> object:
    try:
        codecs.lookup(str(value))
    except LookupError:
        raise problem(f"unknown encoding '{value}'") from None
    return value


def _expression(value: str, info: ValidationInfo) -> str:
    from segbridge.mapping import compile_expression

    if _checked(info):
        try:
            compile_expression(value)
        except ValueError as exc:
            raise problem(str(exc)) from None
    return value


def _truth(value: object) -> bool:
    """Any value was taken for its truth before there were types: kept, so that documents
    written then still import."""
    return bool(value)


Name = Annotated[str, AfterValidator(_name)]
NotBlank = Annotated[str, AfterValidator(_not_blank)]
Cron = Annotated[str, AfterValidator(_cron)]
TimeZone = Annotated[str, BeforeValidator(_time_zone)]
Encoding = Annotated[str, BeforeValidator(_encoding)]
OneCharacter = Annotated[str, Field(min_length=1, max_length=1)]
CallType = Literal["identify", "track", "page", "screen", "group", "alias"]
assert set(CALL_TYPES) == set(CallType.__args__)  # type: ignore[attr-defined]


# ---- schedule, steps, imports -----------------------------------------------------------------

class Schedule(DocumentPart):
    """When the flow runs by itself: a cron read in a time zone."""

    shape: ClassVar[str] = "use {cron: '0 * * * *', timezone: 'Europe/Paris'}"

    cron: Cron
    timezone: TimeZone = "UTC"

    @classmethod
    def shape_problem(cls, data: object) -> bool:
        return not isinstance(data, Mapping) or not isinstance(data.get("cron"), str)


class Filter(DocumentPart):
    """Records for which the expression is false are ignored."""

    model_config = ConfigDict(extra="allow")  # other keys were always ignored: kept so

    expression: Annotated[str, AfterValidator(_expression)]


class Step(DocumentPart):
    """One step between the export and the imports (today: a filter)."""

    shape: ClassVar[str] = "use {filter: {expression: \"status != 'x'\"}}"

    filter: Filter

    @classmethod
    def shape_problem(cls, data: object) -> bool:
        if not isinstance(data, Mapping) or set(data) != {"filter"}:
            return True
        step = data["filter"]
        return not isinstance(step, Mapping) or not isinstance(step.get("expression"), str)


class Import(DocumentPart):
    """One import: the records mapped to one call type, sent through one connection."""

    shape: ClassVar[str] = "use {name, connection, call, mapping}"
    hints: ClassVar[Mapping[str, str]] = {
        "name": "enter a name",
        "connection": "name a Segment connection",
        "call": f"use one of: {', '.join(CALL_TYPES)}",
        "mapping": "map at least the ids of the call",
    }

    name: Name
    connection: str = Field(description="a Segment connection, by name or id")
    call: CallType
    mapping: dict[str, object] = Field(description="the call's fields and where each comes "
                                                   "from (docs/mapping.md)")

    @classmethod
    def unchecked(cls, data: Mapping[str, object]) -> set[str]:
        return set() if data.get("call") in CALL_TYPES else {"mapping"}

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        from segbridge.mapping import validate_mapping

        call, mapping = data.get("call"), data.get("mapping")
        if call not in CALL_TYPES or not isinstance(mapping, Mapping) or not _checked(info):
            return []
        return [_located((one.field,), one.message)
                for one in validate_mapping(str(call), mapping)]


# ---- exports --------------------------------------------------------------------------------

class ExportBase(DocumentPart):
    """What every export kind takes. Keys of another kind are kept and ignored (documents
    written before the kinds were told apart still import); any other key is refused."""

    model_config = ConfigDict(extra="allow")
    hints: ClassVar[Mapping[str, str]] = {"key_field": "name a field, e.g. order_id"}
    problem_order: ClassVar[tuple[str, ...]] = (
        "type", "path", "upload", "options", "connection", "query", "cursor", "key_field")

    key_field: Annotated[str, Field(min_length=1)] | None = Field(
        default=None, description="the record's stable key (messageIds)")

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        return unknown_export_keys(data)


class FileOptions(DocumentPart):
    """How an NDJSON or JSON file is read."""

    shape: ClassVar[str] = "use a mapping of options"

    encoding: Encoding = "utf-8"


class CsvOptions(FileOptions):
    """How a CSV file is read."""

    hints: ClassVar[Mapping[str, str]] = {
        "delimiter": "use a single character", "quote": "use a single character",
        "header": "use true (first line), or a list of column names",
        "skip_blank_lines": "use true or false"}

    delimiter: OneCharacter = ","
    quote: OneCharacter = '"'
    header: bool | list[str] = True
    skip_blank_lines: Annotated[bool, BeforeValidator(_truth)] = True


class FileExportBase(ExportBase):
    """A file on the server (``path``, under the allowed roots) or uploaded (``upload``)."""

    hints: ClassVar[Mapping[str, str]] = {
        **ExportBase.hints, "options": "use a mapping of options",
        "path": "give either a path on the server or an upload id",
        "upload": "give either a path on the server or an upload id"}

    path: str | None = None
    upload: str | None = None

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        problems = super().more_problems(data, info)
        if bool(data.get("path")) == bool(data.get("upload")):
            problems.append(_located(("path",), "give either a path on the server or an "
                                                "upload id"))
        return problems


class CsvExport(FileExportBase):
    """A CSV file: one record per line, named by the header (or ``options.header``)."""

    type: Literal["csv"]
    options: CsvOptions = Field(default_factory=CsvOptions)


class NdjsonExport(FileExportBase):
    """A file of JSON objects, one per line."""

    type: Literal["ndjson"]
    options: FileOptions = Field(default_factory=FileOptions)


class JsonExport(FileExportBase):
    """A JSON file: an array of objects."""

    type: Literal["json"]
    options: FileOptions = Field(default_factory=FileOptions)


class Cursor(DocumentPart):
    """An incremental export: rows whose ``column`` passed the last run's, less the lag."""

    shape: ClassVar[str] = "use {column: updated_at, lag_seconds: 60}"
    hints: ClassVar[Mapping[str, str]] = {
        "lag_seconds": "use a whole number of seconds, 0 or more"}

    column: str
    lag_seconds: Annotated[int, Field(ge=0)] = 0

    @classmethod
    def shape_problem(cls, data: object) -> bool:
        return not isinstance(data, Mapping) or not isinstance(data.get("column"), str)


class DatabaseExport(ExportBase):
    """The rows of a SELECT query on a Database connection."""

    hints: ClassVar[Mapping[str, str]] = {
        **ExportBase.hints, "connection": "name a Database connection",
        "query": "write the SELECT query to export"}

    type: Literal["database"]
    connection: str = Field(description="a Database connection, by name or id")
    query: NotBlank
    cursor: Cursor | None = None


EXPORT_KINDS: dict[str, type[ExportBase]] = {
    "csv": CsvExport, "ndjson": NdjsonExport, "json": JsonExport, "database": DatabaseExport}
FILE_KINDS = ("csv", "ndjson", "json")
EXPORT_SHAPE = "describe the source: {type: csv, path: ...}"


def export_keys() -> list[str]:
    """Every key an export may have, of any kind."""
    return sorted({key for kind in EXPORT_KINDS.values() for key in kind.known_keys()})


def unknown_export_keys(data: Mapping[str, object]) -> list[InitErrorDetails]:
    known = export_keys()
    return [_located((key,), f"unknown key; use one of: {', '.join(known)}")
            for key in data if key not in known]


def _export_kind(data: object, handler: ValidatorFunctionWrapHandler) -> object:
    """The kind's model, with the problems at the export's own fields (not under the kind's
    tag); an unknown ``type`` lists the kinds, and the keys no kind takes."""
    if not isinstance(data, Mapping):
        raise problem(EXPORT_SHAPE)
    if data.get("type") not in tuple(EXPORT_KINDS):
        problems = [*unknown_export_keys(data),
                    _located(("type",), f"use one of: {', '.join(EXPORT_KINDS)}")]
        raise ValidationError.from_exception_data("Export", problems)
    try:
        return handler(data)
    except ValidationError as exc:
        raise ValidationError.from_exception_data("Export", [
            _located(tuple(error["loc"][1:]), error["msg"], error.get("input"))
            for error in exc.errors()]) from None


Export = Annotated[CsvExport | NdjsonExport | JsonExport | DatabaseExport,
                   Field(discriminator="type"), WrapValidator(_export_kind)]


# ---- the flow -------------------------------------------------------------------------------

class FlowDocument(DocumentPart):
    """A flow as code: where records come from, the steps, the imports, the schedule."""

    shape: ClassVar[str] = "a flow is a mapping with name, export and imports"
    hints: ClassVar[Mapping[str, str]] = {
        "name": "enter a name",
        "integration": "name the integration the flow belongs to",
        "enabled": "use true or false",
        "export": EXPORT_SHAPE,
        "steps": "use a list of steps, e.g. [{filter: {expression: ...}}]",
        "imports": "add at least one import: {name, connection, call, mapping}",
    }

    name: Name
    integration: NotBlank = Field(description="the integration, by name or id")
    enabled: bool = True
    schedule: Schedule | None = None
    export: Export
    steps: list[Step] = Field(default_factory=list)
    imports: Annotated[list[Import], Field(min_length=1)]
    description: object = None

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        imports = data.get("imports")
        return _repeated_import_names(imports) if isinstance(imports, list) else []

    def as_written(self) -> dict[str, object]:
        """The document as JSON, with only the keys it was written with."""
        written: dict[str, object] = self.model_dump(mode="json")
        return written


def _repeated_import_names(imports: list[object]) -> list[InitErrorDetails]:
    names: set[str] = set()
    problems = []
    for index, step in enumerate(imports):
        name = step.get("name") if isinstance(step, Mapping) else None
        if isinstance(name, str):
            if name.casefold() in names:
                problems.append(_located(("imports", index, "name"), "import names must differ"))
            names.add(name.casefold())
    return problems


def parse_flow_document(doc: object) -> FlowDocument:
    """The typed document; ValidationFailed listing every problem at its field path."""
    if not isinstance(doc, Mapping):
        raise ValidationFailed([FieldProblem("flow", FlowDocument.shape)])
    try:
        return FlowDocument.model_validate(doc)
    except ValidationError as exc:
        raise ValidationFailed(field_problems(exc)) from None


def stored_flow_document(definition: Mapping[str, object]) -> FlowDocument:
    """A saved flow's document, read back (its semantic checks were made when it was saved)."""
    return FlowDocument.model_validate(definition, context={STORED: True})


def field_problems(exc: ValidationError) -> list[FieldProblem]:
    return [FieldProblem(".".join(str(part) for part in error["loc"]) or "flow", error["msg"])
            for error in exc.errors()]

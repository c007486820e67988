"""The flow document (flows as code) as a typed model, checked with every problem at once.

A flow arrives as JSON (the API) or YAML (import, the CLI); ``parse_flow_document`` turns it
into a ``FlowDocument`` or lists every problem, each at its field path (``export.options.
delimiter``, ``imports.0.mapping.userId``) and phrased as what to write instead. Pydantic
checks the shape; the messages stay ours (``exports.document.DocumentPart``): each part of the
document says what to write when it is not a mapping (``shape``), and what to write for a
field that is missing or of the wrong type (``hints``); the checks pydantic cannot make (a
cron, a time zone, an expression, a mapping, unique import names) raise ``problem(...)`` with
their own words.

The export is a union discriminated by ``type``: one model per export kind, declared by the
application that opens it (``export_models``: ``apps/files/document.py``,
``apps/database/document.py``) and read from the registry (``EXPORT_KINDS``). A new kind (an
application that can be a source, e.g. ``parquet``) is its application's model and registry
line; nothing here changes.

The stored definition stays the document as written (the run engine reads it); documents
written before this model keep importing: keys of another export kind in an export (``query``
in a CSV export) are kept and ignored, as they always were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails

from segbridge.apps.registry import default_registry
from segbridge.apps.segment.limits import CALL_TYPES
from segbridge.core.errors import FieldProblem, ValidationFailed
from segbridge.exports.document import (
    STORED,
    DocumentPart,
    ExportBase,
    NotBlank,
    checked,
    located,
    problem,
)
from segbridge.runs.lookups import DEFAULT_CACHE_SIZE, DEFAULT_CACHE_TTL

# ---- values ---------------------------------------------------------------------------------

def _name(value: str) -> str:
    if not value.strip():
        raise problem("enter a name")
    if len(value.strip()) > 100:
        raise problem("use at most 100 characters")
    return value


def _cron(value: str, info: ValidationInfo) -> str:
    from croniter import croniter

    if checked(info) and not croniter.is_valid(value):
        raise problem(f"'{value}' is not a cron expression; e.g. '0 * * * *' (hourly)")
    return value


def _time_zone(value: object) -> object:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise problem(f"'{value}' is not an IANA time zone; e.g. 'Europe/Paris'") from None
    return value


def _expression(value: str, info: ValidationInfo) -> str:
    from segbridge.mapping import compile_expression

    if checked(info):
        try:
            compile_expression(value)
        except ValueError as exc:
            raise problem(str(exc)) from None
    return value


Name = Annotated[str, AfterValidator(_name)]
Cron = Annotated[str, AfterValidator(_cron)]
TimeZone = Annotated[str, BeforeValidator(_time_zone)]
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


ON_MISSING = ("leave_empty", "fail_record", "ignore_record")
OnMissing = Literal["leave_empty", "fail_record", "ignore_record"]
SyncMode = Literal["all", "changed", "new"]  # an import's records: ``runs.diff``
SYNC_MODES: tuple[str, ...] = ("all", "changed", "new")
MAX_CACHE_KEYS = 1_000_000


def _field_name(value: str) -> str:
    if not value.strip() or "." in value:
        raise problem("enter the name of the record field the result goes under "
                      "(no dots), e.g. customer")
    return _name(value)


def _record_field(value: object) -> object:
    if not isinstance(value, str) or not value.strip() or "" in value.split("."):
        raise problem("name a record field (or a dotted path such as customer.id)")
    return value


class LookupCache(DocumentPart):
    """How many keys' answers a run keeps, and for how long."""

    shape: ClassVar[str] = "use {size: 10000, ttl_seconds: 600}"
    hints: ClassVar[Mapping[str, str]] = {
        "size": f"use a whole number of keys from 1 to {MAX_CACHE_KEYS:,}",
        "ttl_seconds": "use a whole number of seconds, 0 (no caching) or more",
    }

    size: int = Field(default=DEFAULT_CACHE_SIZE, ge=1, le=MAX_CACHE_KEYS)
    ttl_seconds: int = Field(default=DEFAULT_CACHE_TTL, ge=0, le=7 * 24 * 3600)


LookupQueryValue = str | int | float | bool


class LookupHttpRequest(DocumentPart):
    """An HTTP API lookup's request: ``{name}`` placeholders in the path, the query values and
    the body's strings take the record's values (``params``)."""

    shape: ClassVar[str] = "use {method: GET, path: '/customers/{id}', query: {expand: plan}}"
    hints: ClassVar[Mapping[str, str]] = {
        "method": "use GET or POST",
        "path": "write the path after the connection's base URL, e.g. /customers/{id}",
        "query": "use a mapping of query parameters, e.g. {email: '{email}'}",
        "body": "use a JSON object or array (sent with POST), e.g. {ids: ['{id}']}",
    }

    method: Literal["GET", "POST"] = "GET"
    path: NotBlank
    query: dict[str, LookupQueryValue] = Field(default_factory=dict)
    body: dict[str, Any] | list[Any] | None = None

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        path = data.get("path")
        if isinstance(path, str) and path.strip() and not path.startswith("/"):
            return [located(("path",), "start the path with /, e.g. /customers/{id} (the "
                                       "connection's base URL names the host)")]
        return []


class Lookup(DocumentPart):
    """Fields added to each record from another connection (e.g. a customer's row), under
    ``name``; its application's part (a database's ``query`` and ``key_column``, an HTTP
    API's ``request`` and ``result``) is checked against the connection's application when
    the flow is saved."""

    shape: ClassVar[str] = ("use {name: customer, connection: Shop DB, query: 'select ... where "
                            "id in :id', params: {id: customer_id}, key_column: id} or, for an "
                            "HTTP API connection, {name, connection, request: {path: "
                            "'/customers/{id}'}, params: {id: customer_id}}")
    hints: ClassVar[Mapping[str, str]] = {
        "name": "enter the record field the result goes under, e.g. customer",
        "connection": "name a connection that can answer lookups (e.g. a Database connection)",
        "query": "write the SELECT query, with :name parameters taking record values",
        "params": "map each parameter of the query (or placeholder of the request) to a "
                  "record field, e.g. {id: customer_id}",
        "key_column": "name the query's column that holds the key, or leave it out",
        "result": "name where the answer's object is, e.g. data, or $ for the whole answer",
        "on_missing": f"use one of: {', '.join(ON_MISSING)}",
    }

    name: Annotated[str, AfterValidator(_field_name)]
    connection: NotBlank = Field(description="a connection whose application answers "
                                             "lookups, by name or id")
    query: NotBlank | None = None
    params: dict[str, Annotated[str, BeforeValidator(_record_field)]] = Field(
        default_factory=dict, description="the query's parameters -> record fields")
    key_column: NotBlank | None = Field(default=None, description="batched: the column of "
                                        "the key, the query reads 'in :param'")
    request: LookupHttpRequest | None = Field(default=None, description="an HTTP API "
                                              "connection's request, one per key")
    result: str | None = Field(default=None, description="HTTP: where the answer's object "
                                                         "is (data, $.data.customer; $: all)")
    on_missing: OnMissing = "leave_empty"
    cache: LookupCache = Field(default_factory=LookupCache)
    # stored beside the name when the flow is saved (flows.definition.resolved_steps)
    connection_id: str | None = Field(default=None, exclude=True)

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        query, request = data.get("query"), data.get("request")
        if query is None and request is None:
            return [located(("query",), "write a query (a Database connection) or a request "
                                        "(an HTTP API connection) that finds the row")]
        if query is not None and request is not None:
            return [located(("request",), "a lookup asks with a query or with a request, not "
                                          "both; keep the one its connection answers")]
        return []


STEP_SHAPE = ("use {filter: {expression: \"status != 'x'\"}} or {lookup: {name, connection, "
              "query (or request), params}}")


class Step(DocumentPart):
    """One step between the export and the imports: a filter or a lookup."""

    shape: ClassVar[str] = "use {filter: {expression: \"status != 'x'\"}}"  # a filter's

    filter: Filter | None = None
    lookup: Lookup | None = None

    @classmethod
    def shape_problem(cls, data: object) -> bool:
        if not isinstance(data, Mapping) or len(data) != 1 or \
                next(iter(data)) not in ("filter", "lookup"):
            raise problem(STEP_SHAPE)
        if "lookup" in data:
            return False  # the lookup's own model says what is wrong with it
        step = data["filter"]
        return not isinstance(step, Mapping) or not isinstance(step.get("expression"), str)


DELETED_CALLS = ("track", "identify")


class DeletedCall(DocumentPart):
    """The call sent once for each key a sync of changed or new records no longer finds (off
    by default): a track with its event, or an identify; the key's value goes in its
    properties (traits) under the key field's name, with the identity last sent for it."""

    shape: ClassVar[str] = ("use {call: track, event: Record Deleted} or {call: identify, "
                            "traits: {deleted: true}}")
    hints: ClassVar[Mapping[str, str]] = {
        "call": f"use one of: {', '.join(DELETED_CALLS)}",
        "event": "name the event, e.g. Record Deleted",
        "properties": "use a mapping of constant properties, e.g. {reason: deleted}",
        "traits": "use a mapping of constant traits, e.g. {deleted: true}",
    }

    call: Literal["track", "identify"]
    event: NotBlank | None = Field(default=None, description="track: the event's name")
    properties: dict[str, Any] | None = Field(default=None, description="track: constant "
                                              "properties (the key is added)")
    traits: dict[str, Any] | None = Field(default=None, description="identify: constant "
                                          "traits (the key is added)")

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        call = data.get("call")
        if call == "track":
            problems = [] if "event" in data else [located(
                ("event",), "a deleted key's track needs its event: add event, e.g. "
                            "event: Record Deleted")]
            if "traits" in data:
                problems.append(located(("traits",), "a track carries properties, not "
                                                     "traits: write properties instead"))
            return problems
        if call == "identify":
            return [located((name,), f"an identify has no {name}: remove it (an identify "
                                     "carries traits)")
                    for name in ("event", "properties") if name in data]
        return []


class Import(DocumentPart):
    """One import: the records mapped to one call type, sent through one connection."""

    shape: ClassVar[str] = "use {name, connection, call, mapping}"
    hints: ClassVar[Mapping[str, str]] = {
        "name": "enter a name",
        "connection": "name a Segment connection",
        "call": f"use one of: {', '.join(CALL_TYPES)}",
        "mapping": "map at least the ids of the call",
        "sync": f"use one of: {', '.join(SYNC_MODES)}",
        "deleted": DeletedCall.shape,
    }

    name: Name
    connection: str = Field(description="a Segment connection, by name or id")
    call: CallType
    mapping: dict[str, object] = Field(description="the call's fields and where each comes "
                                                   "from (docs/mapping.md)")
    sync: SyncMode = Field(
        default="all", description="which records it sends: all, changed (new or changed "
                                   "since the last run) or new (keys never sent)")
    deleted: DeletedCall | None = Field(
        default=None, description="sync changed or new: the call sent once for each key "
                                  "no longer found (off when absent)")

    @classmethod
    def unchecked(cls, data: Mapping[str, object]) -> set[str]:
        return set() if data.get("call") in CALL_TYPES else {"mapping"}

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        from segbridge.mapping import validate_mapping

        problems = _deleted_without_diff(data)
        call, mapping = data.get("call"), data.get("mapping")
        if call not in CALL_TYPES or not isinstance(mapping, Mapping) or not checked(info):
            return problems
        return [*problems, *(located((one.field,), one.message)
                             for one in validate_mapping(str(call), mapping))]


def _deleted_without_diff(data: Mapping[str, object]) -> list[InitErrorDetails]:
    """Deleted keys are the keys of a snapshot: only a sync of changed or new records has one."""
    if data.get("deleted") is None or data.get("sync") in ("changed", "new"):
        return []
    return [located(("deleted",), "a call for deleted keys needs a sync that compares "
                                  "records by key: set sync: changed (or new), or remove "
                                  "deleted")]


# ---- exports --------------------------------------------------------------------------------

# Each export kind's model, from the application that opens it, in registry order.
EXPORT_KINDS: dict[str, type[ExportBase]] = default_registry().export_models()
EXPORT_SHAPE = "describe the source: {type: csv, path: ...}"
UNFINISHED = "unfinished"  # validation context: a flow builder's flow, not yet complete


def export_keys() -> list[str]:
    """Every key an export may have, of any kind."""
    return sorted({key for kind in EXPORT_KINDS.values() for key in kind.known_keys()})


def unknown_export_keys(data: Mapping[str, object]) -> list[InitErrorDetails]:
    known = export_keys()
    return [located((key,), f"unknown key; use one of: {', '.join(known)}")
            for key in data if key not in known]


def _export_kind(data: object, handler: ValidatorFunctionWrapHandler) -> object:
    """The kind's model, with the problems at the export's own fields (not under the kind's
    tag); an unknown ``type`` lists the kinds; the keys no kind takes come first."""
    if not isinstance(data, Mapping):
        raise problem(EXPORT_SHAPE)
    unknown = unknown_export_keys(data)
    if data.get("type") not in tuple(EXPORT_KINDS):
        problems = [*unknown, located(("type",), f"use one of: {', '.join(EXPORT_KINDS)}")]
        raise ValidationError.from_exception_data("Export", problems)
    try:
        export = handler(data)
    except ValidationError as exc:
        raise ValidationError.from_exception_data("Export", [*unknown, *(
            located(tuple(error["loc"][1:]), error["msg"], error.get("input"))
            for error in exc.errors())]) from None
    if unknown:
        raise ValidationError.from_exception_data("Export", unknown)
    return export


if TYPE_CHECKING:
    Export = ExportBase  # at run time: the union of the registry's export kinds (below)
else:
    Export = Annotated[Union[tuple(EXPORT_KINDS.values())],  # noqa: UP007 - built at run time
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
    export: Export | None = Field(default=None, description="null only in an unfinished "
                                                            "flow of the flow builder")
    steps: list[Step] = Field(default_factory=list)
    imports: list[Import] = Field(default_factory=list, description="empty only in an "
                                                                    "unfinished flow")
    description: object = None

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        imports = data.get("imports")
        problems = _repeated_import_names(imports) if isinstance(imports, list) else []
        if isinstance(imports, list):
            problems += _diffs_without_key(imports, data.get("export"))
        if not _unfinished_allowed(info):
            problems += _unfinished_parts(data)
        return problems

    def missing_parts(self) -> list[str]:
        """What an unfinished flow lacks before it can run (empty: it is complete)."""
        return [*(["a source (export)"] if self.export is None else []),
                *(["a destination (import)"] if not self.imports else [])]

    def as_written(self) -> dict[str, object]:
        """The document as JSON, with only the keys it was written with."""
        written: dict[str, object] = self.model_dump(mode="json")
        return written


def _unfinished_allowed(info: ValidationInfo) -> bool:
    return isinstance(info.context, Mapping) and bool(info.context.get(UNFINISHED)
                                                      or info.context.get(STORED))


def _unfinished_parts(data: Mapping[str, object]) -> list[InitErrorDetails]:
    """A flow as code must be complete: an export and at least one import."""
    problems = []
    if data.get("export") is None:
        problems.append(located(("export",), EXPORT_SHAPE))
    imports = data.get("imports")
    if (isinstance(imports, list) and not imports) or "imports" not in data:
        problems.append(located(("imports",), FlowDocument.hints["imports"]))
    return problems


def _repeated_import_names(imports: list[object]) -> list[InitErrorDetails]:
    names: set[str] = set()
    problems = []
    for index, step in enumerate(imports):
        name = step.get("name") if isinstance(step, Mapping) else None
        if isinstance(name, str):
            if name.casefold() in names:
                problems.append(located(("imports", index, "name"), "import names must differ"))
            names.add(name.casefold())
    return problems


def _diffs_without_key(imports: list[object], export: object) -> list[InitErrorDetails]:
    """A sync of changed or new records compares records by their key: the export needs
    ``key_field``."""
    if not isinstance(export, Mapping) or export.get("key_field"):
        return []
    return [located(("imports", index, "sync"),
                    f"sync: {step['sync']} compares each record with the last run by its key: "
                    "set the export's key_field (e.g. key_field: order_id), or use sync: all")
            for index, step in enumerate(imports)
            if isinstance(step, Mapping) and step.get("sync") in ("changed", "new")]


def parse_flow_document(doc: object, *, unfinished: bool = False) -> FlowDocument:
    """The typed document; ValidationFailed listing every problem at its field path.
    ``unfinished``: the flow builder's flow may lack its export or imports for now."""
    if not isinstance(doc, Mapping):
        raise ValidationFailed([FieldProblem("flow", FlowDocument.shape)])
    try:
        return FlowDocument.model_validate(doc, context={UNFINISHED: unfinished})
    except ValidationError as exc:
        raise ValidationFailed(field_problems(exc)) from None


def stored_flow_document(definition: Mapping[str, object]) -> FlowDocument:
    """A saved flow's document, read back (its semantic checks were made when it was saved)."""
    return FlowDocument.model_validate(definition, context={STORED: True})


def field_problems(exc: ValidationError) -> list[FieldProblem]:
    return [FieldProblem(".".join(str(part) for part in error["loc"]) or "flow", error["msg"])
            for error in exc.errors()]

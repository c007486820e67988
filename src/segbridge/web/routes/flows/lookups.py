"""The Lookup pane: add, edit or remove a flow's lookup steps (fields added to each record
from another connection, e.g. a customer's row); after a save, a few records with the values
found. Lookup N of the pane is step N of the document (lookups come before the filters).

The pane asks in the chosen connection's form: a query and a key column (Database) or a
request (method, path, query lines, JSON body) and where the answer's object is (HTTP API),
as its application's ``lookup_fields`` say. Choosing another connection shows the pane again
in that connection's form, with what was typed (htmx; without it, a save names the fields
the connection does not take and the pane then shows its own)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData, QueryParams

from segbridge.apps.base import Capability
from segbridge.connections.views import ConnectionPublic
from segbridge.core.errors import FieldProblem, ValidationFailed
from segbridge.flows.document import LookupCache
from segbridge.flows.views import FlowPublic
from segbridge.web import flow_editing as edit
from segbridge.web.auth import (
    CheckedForm,
    MayEditFlows,
    SignedIn,
    WebUser,
    form_text,
    runtime_of,
)
from segbridge.web.forms import FieldErrors
from segbridge.web.routes.flows.common import (
    LIST_PATH,
    Notice,
    PaneState,
    after_save,
    builder_url,
    connection_name,
    create_connection,
    find_flow,
    find_flow_part,
    json_or_text,
    pane_sample,
    query_from_lines,
    request_texts,
    save_removal,
    show_pane,
)

router = APIRouter(include_in_schema=False)

TEMPLATE = "flows/pane_lookup.html"
PREVIEW_SIZE = 5
MAX_FIELDS = 40  # record fields offered for the parameters
SQL_SETTINGS = ("query", "key_column")
HTTP_SETTINGS = ("request.method", "request.path", "request.query", "request.body", "result")
SETTINGS = ("name", "connection", *SQL_SETTINGS, *HTTP_SETTINGS, "on_missing", "cache.size",
            "cache.ttl_seconds")
FORM_FIELDS = (*(f"lookup.{name}" for name in SETTINGS), "lookup.params")
SQL_FORM, HTTP_FORM = "query", "request"  # the two forms, named by their first field
SQL_FIELDS = ("query", "key_column")  # what an application without ``lookup_fields`` reads
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
PARAMS = "lookup.params"
REMOVED = "lookup_removed"
TYPED = tuple(f"lookup.{name}" for name in SETTINGS if name != "connection")
MAX_RETURN = 1900  # a return address is at most 2000 characters (web/routes/pane.py)


# ---- what the pane shows ---------------------------------------------------------------------

def pane_url(flow_id: str, index: int | None) -> str:
    return f"{builder_url(flow_id)}/lookups/" + ("new" if index is None else str(index))


def lookup_connections(request: Request, user: WebUser) -> list[ConnectionPublic]:
    """The account's connections whose application can answer lookups."""
    keys = _lookup_apps(request)
    return [c for c in runtime_of(request).connections.list_all(user.principal)
            if c.application in keys]


def form_of(request: Request, user: WebUser, values: Mapping[str, str]) -> str:
    """The form the pane shows: the chosen connection's application's (``lookup_fields``);
    without a connection, the one the values were typed in."""
    chosen = values.get("lookup.connection", "")
    apps = runtime_of(request).registry.applications
    for connection in lookup_connections(request, user) if chosen else []:
        if chosen in (connection.name, connection.id):
            reads = getattr(apps.get(connection.application), "lookup_fields", SQL_FIELDS)
            return HTTP_FORM if HTTP_FORM in reads else SQL_FORM
    return HTTP_FORM if values.get("lookup.request.path", "").strip() else SQL_FORM


def form_fields(form: str) -> tuple[str, ...]:
    """The fields the pane shows (and names problems at) in this form."""
    hidden = SQL_SETTINGS if form == HTTP_FORM else HTTP_SETTINGS
    return tuple(name for name in FORM_FIELDS
                 if name.removeprefix("lookup.") not in hidden)


def wanted_parameters(values: Mapping[str, str], form: str) -> list[str]:
    """The parameters the typed query (``:name``) or request (``{name}``) uses, in order."""
    if form == SQL_FORM:
        return edit.query_parameters(values.get("lookup.query", ""))
    texts = [values.get(f"lookup.{name}", "") for name in HTTP_SETTINGS]
    return list(dict.fromkeys(name for text in texts for name in _PLACEHOLDER.findall(text)))


def _lookup_apps(request: Request) -> dict[str, str]:
    """The applications that answer lookups: key -> name (today: Database)."""
    return {app.key: app.name for app in runtime_of(request).registry.all()
            if Capability.LOOKUP in app.capabilities}


def typed_return(flow_id: str, index: int | None, values: Mapping[str, str],
                 rows: Sequence[tuple[str, str]]) -> str:
    """The pane's address with what was typed in its query, to come back to from Create
    connection (without the query's text when it would make the address too long)."""
    pairs = [(key, values[key]) for key in TYPED if values.get(key, "").strip()]
    pairs += [pair for name, field in rows if name or field
              for pair in (("param", name), ("param_field", field))]
    path = pane_url(flow_id, index)
    long_texts = ("lookup.query", "lookup.request.body")
    for kept in (pairs, [p for p in pairs if p[0] not in long_texts], []):
        if len(address := path + ("?" + urlencode(kept) if kept else "")) <= MAX_RETURN:
            return address
    return path


def values_of(lookup: Mapping[str, Any]) -> dict[str, str]:
    """The form's values from a saved lookup."""
    values = {f"lookup.{key}": str(lookup[key]) for key in
              ("name", "connection", "query", "key_column", "result", "on_missing")
              if lookup.get(key) is not None}
    asked = lookup.get("request")
    if isinstance(asked, Mapping):
        values.update(_request_values(asked))
    cache = lookup.get("cache")
    if isinstance(cache, Mapping):
        values.update({f"lookup.cache.{key}": str(cache[key]) for key in ("size", "ttl_seconds")
                       if cache.get(key) is not None})
    return values


def _request_values(asked: Mapping[str, Any]) -> dict[str, str]:
    """The HTTP form's values from a saved request (query lines, the body as JSON)."""
    values = {f"lookup.request.{key}": str(asked[key]) for key in ("method", "path")
              if asked.get(key) is not None}
    return {**values, **request_texts(asked, "lookup.request.")}


def param_rows(params: Mapping[str, str], wanted: Sequence[str]) -> list[tuple[str, str]]:
    """The parameter rows to show: those given, each parameter the query or the request
    uses still without a field (``wanted_parameters``), and one empty row to add another."""
    return typed_rows(list(params), list(params.values()), wanted)


def typed_rows(names: Sequence[str], fields: Sequence[str], wanted: Sequence[str],
               ) -> list[tuple[str, str]]:
    """The parameter rows as typed (blank ones left out), then as ``param_rows``."""
    typed = [(n.strip(), f.strip()) for n, f in zip(names, fields, strict=False)
             if n.strip() or f.strip()]
    named = {n for n, _ in typed}
    return [*typed, *((name, "") for name in wanted if name not in named), ("", "")]


def typed_values(query: QueryParams) -> tuple[dict[str, str], list[tuple[str, str]]] | None:
    """What was typed before Create connection (``typed_return``) or before another
    connection was chosen (its form then shown), or None."""
    if not any(key in query for key in (*TYPED, "param")):
        return None
    values = {key: query[key] for key in (*TYPED, "lookup.connection") if key in query}
    rows = typed_rows(query.getlist("param"), query.getlist("param_field"),
                      wanted_parameters(values, HTTP_FORM if values.get("lookup.request.path")
                                        else SQL_FORM))
    return values, rows


def _params_written(lookup: Mapping[str, Any]) -> dict[str, str]:
    params = lookup.get("params")
    return {str(k): str(v) for k, v in params.items()} if isinstance(params, Mapping) else {}


def _record_fields(request: Request, user: WebUser, flow: FlowPublic, name: str) -> list[str]:
    """The fields of the source's first records (read without the steps), to offer for the
    parameters; none when the source cannot be read."""
    doc = {**flow.definition.as_written(), "steps": []}
    sample, _ = pane_sample(request, user, flow, PREVIEW_SIZE, doc=doc)
    found: dict[str, None] = {}
    for record in sample.records if sample else []:
        found.update(dict.fromkeys(key for key in (record.data or {}) if key != name))
    return list(found)[:MAX_FIELDS]


def _context(request: Request, user: WebUser, flow: FlowPublic, index: int | None,
             state: PaneState, rows: Sequence[tuple[str, str]], *,
             sample: bool) -> dict[str, Any]:
    """The pane's context; ``sample``: read a few records through the saved lookups."""
    name = state.values.get("lookup.name", "")
    result, problems = pane_sample(request, user, flow, PREVIEW_SIZE,
                                   wanted=sample and index is not None)
    return {"index": index, "values": state.values, "errors": state.errors,
            "form": form_of(request, user, state.values),
            "pane_url": pane_url(flow.id, index),
            "pane_notice": state.notice, "param_rows": rows,
            "connections": lookup_connections(request, user),
            "create_apps": list(_lookup_apps(request).items()),
            "record_fields": _record_fields(request, user, flow, name),
            "on_missing_choices": edit.ON_MISSING_CHOICES,
            "cache_defaults": LookupCache(),
            "preview": result, "problems": problems,
            "has_source": flow.definition.export is not None}


def _lookup_count(flow: FlowPublic) -> int:
    return len(edit.lookups_of(flow.definition.as_written()))


def _find_lookup(request: Request, user: WebUser, flow_id: str,
                 index: int) -> FlowPublic | Response:
    """The flow when it has lookup ``index``, else the Not found page."""
    return find_flow_part(request, user, flow_id, index, count=_lookup_count, noun="lookup")


# ---- the pane --------------------------------------------------------------------------------

@router.get(LIST_PATH + "/{flow_id}/lookups/new")
def new_lookup_pane(request: Request, flow_id: str, user: SignedIn,
                    connection: str = "") -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    values, rows = typed_values(request.query_params) or ({}, param_rows({}, []))
    values.setdefault("lookup.on_missing", "leave_empty")
    notice = None
    if connection:
        values["lookup.connection"] = connection_name(request, user, connection)
        notice = Notice("ok", f"Connection '{values['lookup.connection']}' chosen.")
    context = _context(request, user, flow, None, PaneState(values, notice=notice), rows,
                       sample=False)
    return show_pane(request, user, flow, TEMPLATE, context)


@router.get(LIST_PATH + "/{flow_id}/lookups/{index}")
def lookup_pane(request: Request, flow_id: str, index: int, user: SignedIn,
                saved: str = "", connection: str = "") -> Response:
    flow = _find_lookup(request, user, flow_id, index)
    if isinstance(flow, Response):
        return flow
    lookup = edit.lookups_of(flow.definition.as_written())[index]
    values = values_of(lookup)
    rows = param_rows(_params_written(lookup), wanted_parameters(values, _form_written(lookup)))
    typed = typed_values(request.query_params)
    if typed is not None:
        values, rows = {**values, **typed[0]}, typed[1]
    if connection:
        values["lookup.connection"] = connection_name(request, user, connection)
    notice = Notice("ok", "Lookup saved.") if saved else None
    context = _context(request, user, flow, index, PaneState(values, notice=notice), rows,
                       sample=not connection)
    return show_pane(request, user, flow, TEMPLATE, context)


@router.post(LIST_PATH + "/{flow_id}/lookups/new/connection")
def lookup_new_connection(request: Request, flow_id: str, user: MayEditFlows,
                          form: CheckedForm) -> Response:
    """Create connection from the Lookup pane: the Create connection pane (of the application
    chosen), which comes back to the pane with what was typed and the new connection chosen."""
    index = int(form_text(form, "index")) if form_text(form, "index").isdigit() else None
    flow = (find_flow(request, user, flow_id) if index is None
            else _find_lookup(request, user, flow_id, index))
    if isinstance(flow, Response):
        return flow
    apps = _lookup_apps(request)
    app = form_text(form, "app") if form_text(form, "app") in apps else next(iter(apps), "")
    values = {key: form_text(form, key) for key in TYPED}
    rows = typed_rows(_texts(form, "param"), _texts(form, "param_field"), [])
    return create_connection(request, app, typed_return(flow.id, index, values, rows))


@router.post(LIST_PATH + "/{flow_id}/lookups")
def add_lookup(request: Request, flow_id: str, user: MayEditFlows,
               form: CheckedForm) -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    return _save(request, user, flow, None, form)


@router.post(LIST_PATH + "/{flow_id}/lookups/{index}")
def save_lookup(request: Request, flow_id: str, index: int, user: MayEditFlows,
                form: CheckedForm) -> Response:
    flow = _find_lookup(request, user, flow_id, index)
    if isinstance(flow, Response):
        return flow
    return _save(request, user, flow, index, form)


@router.post(LIST_PATH + "/{flow_id}/lookups/{index}/delete")
def remove_lookup(request: Request, flow_id: str, index: int, user: MayEditFlows,
                  _: CheckedForm) -> Response:
    flow = _find_lookup(request, user, flow_id, index)
    if isinstance(flow, Response):
        return flow
    doc = edit.without_lookup(flow.definition.as_written(), index)
    return save_removal(request, user, flow, doc, REMOVED)


# ---- saving ----------------------------------------------------------------------------------

def _save(request: Request, user: WebUser, flow: FlowPublic, index: int | None,
          form: FormData) -> Response:
    values = {key: form_text(form, key) for key in FORM_FIELDS}
    shown = form_text(form, "form") if form_text(form, "form") in (SQL_FORM, HTTP_FORM) \
        else SQL_FORM
    names, fields = _texts(form, "param"), _texts(form, "param_field")
    params = edit.params_of(names, fields)
    rows = typed_rows(names, fields, wanted_parameters(values, shown))
    unnamed = edit.unnamed_fields(names, fields)
    if unnamed:
        example = "customer for {customer}" if shown == HTTP_FORM else "customer for :customer"
        problem = FieldProblem(PARAMS, f"name the parameter that takes {', '.join(unnamed)} "
                                       f"(e.g. {example})")
        return _refused(request, user, flow, index, values, rows, [problem])
    lookup = edit.lookup_settings(
        name=values["lookup.name"], connection=values["lookup.connection"],
        query=values["lookup.query"], params=params, key_column=values["lookup.key_column"],
        on_missing=values["lookup.on_missing"], cache_size=values["lookup.cache.size"],
        cache_ttl=values["lookup.cache.ttl_seconds"])
    if shown == HTTP_FORM:
        lookup = http_lookup(lookup, values)
    current = flow.definition.as_written()
    step = len(edit.lookups_of(current)) if index is None else index
    doc = edit.with_lookup(current, lookup, index)
    try:
        flow = runtime_of(request).flows.update(user.principal, flow.id, doc, unfinished=True)
    except ValidationFailed as exc:
        return _refused(request, user, flow, index, values, rows,
                        pane_problems(exc.problems, step))
    redirect = after_save(request, pane_url(flow.id, step))
    if redirect is not None:
        return redirect
    state = PaneState(values_of(lookup), notice=Notice("ok", "Lookup saved."))
    rows = param_rows(params, wanted_parameters(state.values, _form_written(lookup)))
    context = _context(request, user, flow, step, state, rows, sample=True)
    response = show_pane(request, user, flow, TEMPLATE, context, board=True)
    if index is None:
        response.headers["HX-Push-Url"] = pane_url(flow.id, step)
    return response


def http_lookup(lookup: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """The SQL-form lookup of ``edit.lookup_settings`` in the HTTP form: the request and
    where the answer's object is instead of the query and the key column (a query line
    without = or a body that is not JSON kept as typed: the document names it)."""
    asked: dict[str, Any] = {"path": values["lookup.request.path"].strip()}
    if values["lookup.request.method"] == "POST":
        asked["method"] = "POST"
    if values["lookup.request.query"].strip():
        asked["query"] = query_from_lines(values["lookup.request.query"])
    if values["lookup.request.body"].strip():
        asked["body"] = json_or_text(values["lookup.request.body"])
    found: dict[str, Any] = {}
    for key, value in lookup.items():
        if key in SQL_FIELDS:
            continue
        found[key] = value
        if key == "connection":
            found["request"] = asked
            if values["lookup.result"].strip():
                found["result"] = values["lookup.result"].strip()
    return found


def _form_written(lookup: Mapping[str, Any]) -> str:
    return HTTP_FORM if lookup.get("request") is not None else SQL_FORM


def _texts(form: FormData, key: str) -> list[str]:
    return [value for value in form.getlist(key) if isinstance(value, str)]


def pane_problems(problems: Sequence[FieldProblem], step: int) -> list[FieldProblem]:
    """The service's problems as the pane names them: ``steps.N.lookup.<field>`` of this
    lookup at its field (a parameter's at the parameters); others as they are."""
    prefix = f"steps.{step}."
    found = []
    for problem in problems:
        name = problem.field.removeprefix(prefix) if problem.field.startswith(prefix) else ""
        if name.startswith(PARAMS) or name == "lookup.request":  # a {name} without a field
            name = PARAMS
        for known in FORM_FIELDS:
            if name.startswith(known + "."):  # a query line's or a body item's problem
                name = known
        found.append(FieldProblem(name if name in FORM_FIELDS else problem.field,
                                  problem.message))
    return found


def _refused(request: Request, user: WebUser, flow: FlowPublic, index: int | None,
             values: dict[str, str], rows: list[tuple[str, str]],
             problems: list[FieldProblem]) -> Response:
    state = PaneState(values, FieldErrors.of(problems, form_fields(form_of(request, user,
                                                                          values))))
    context = _context(request, user, flow, index, state, rows, sample=False)
    return show_pane(request, user, flow, TEMPLATE, context, status=422)

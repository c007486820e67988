"""The Lookup pane: add, edit or remove a flow's lookup steps (fields added to each record
from another connection, e.g. a customer's row); after a save, a few records with the values
found. Lookup N of the pane is step N of the document (lookups come before the filters)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, QueryParams

from segbridge.apps.base import Capability
from segbridge.connections.views import ConnectionPublic
from segbridge.core.errors import FieldProblem, NotFound, ValidationFailed
from segbridge.flows.document import LookupCache
from segbridge.flows.views import FlowPublic, PreviewPublic
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
from segbridge.web.rendering import is_htmx
from segbridge.web.routes.flows.common import (
    LIST_PATH,
    PANE_TARGET,
    Notice,
    PaneState,
    after_save,
    builder_page,
    builder_url,
    connection_name,
    find_flow,
    go,
    not_found,
    read_sample,
    show_pane,
)

router = APIRouter(include_in_schema=False)

TEMPLATE = "flows/pane_lookup.html"
PREVIEW_SIZE = 5
MAX_FIELDS = 40  # record fields offered for the parameters
SETTINGS = ("name", "connection", "query", "key_column", "on_missing", "cache.size",
            "cache.ttl_seconds")
FORM_FIELDS = (*(f"lookup.{name}" for name in SETTINGS), "lookup.params")
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
    for kept in (pairs, [p for p in pairs if p[0] != "lookup.query"], []):
        if len(address := path + ("?" + urlencode(kept) if kept else "")) <= MAX_RETURN:
            return address
    return path


def values_of(lookup: Mapping[str, Any]) -> dict[str, str]:
    """The form's values from a saved lookup."""
    values = {f"lookup.{key}": str(lookup[key]) for key in
              ("name", "connection", "query", "key_column", "on_missing")
              if lookup.get(key) is not None}
    cache = lookup.get("cache")
    if isinstance(cache, Mapping):
        values.update({f"lookup.cache.{key}": str(cache[key]) for key in ("size", "ttl_seconds")
                       if cache.get(key) is not None})
    return values


def param_rows(params: Mapping[str, str], query: str) -> list[tuple[str, str]]:
    """The parameter rows to show: those given, each ``:name`` of the query still without a
    field, and one empty row to add another."""
    return typed_rows(list(params), list(params.values()), query)


def typed_rows(names: Sequence[str], fields: Sequence[str], query: str,
               ) -> list[tuple[str, str]]:
    """The parameter rows as typed (blank ones left out), then as ``param_rows``."""
    typed = [(n.strip(), f.strip()) for n, f in zip(names, fields, strict=False)
             if n.strip() or f.strip()]
    named = {n for n, _ in typed}
    return [*typed, *((name, "") for name in edit.query_parameters(query) if name not in named),
            ("", "")]


def typed_values(query: QueryParams) -> tuple[dict[str, str], list[tuple[str, str]]] | None:
    """What was typed before Create connection (``typed_return``), or None."""
    if not any(key in query for key in (*TYPED, "param")):
        return None
    values = {key: query[key] for key in TYPED if key in query}
    rows = typed_rows(query.getlist("param"), query.getlist("param_field"),
                      values.get("lookup.query", ""))
    return values, rows


def _params_written(lookup: Mapping[str, Any]) -> dict[str, str]:
    params = lookup.get("params")
    return {str(k): str(v) for k, v in params.items()} if isinstance(params, Mapping) else {}


def _record_fields(request: Request, user: WebUser, flow: FlowPublic, name: str) -> list[str]:
    """The fields of the source's first records (read without the steps), to offer for the
    parameters; none when the source cannot be read."""
    if flow.definition.export is None:
        return []
    doc = {**flow.definition.as_written(), "steps": []}
    sample, _ = read_sample(request, user, flow.id, doc, PREVIEW_SIZE)
    found: dict[str, None] = {}
    for record in sample.records if sample else []:
        found.update(dict.fromkeys(key for key in (record.data or {}) if key != name))
    return list(found)[:MAX_FIELDS]


def _context(request: Request, user: WebUser, flow: FlowPublic, index: int | None,
             state: PaneState, rows: Sequence[tuple[str, str]], *,
             sample: bool) -> dict[str, Any]:
    """The pane's context; ``sample``: read a few records through the saved lookups."""
    name = state.values.get("lookup.name", "")
    result: PreviewPublic | None = None
    problems: list[FieldProblem] = []
    if sample and index is not None and flow.definition.export is not None:
        result, problems = read_sample(request, user, flow.id, None, PREVIEW_SIZE)
    return {"index": index, "values": state.values, "errors": state.errors,
            "pane_notice": state.notice, "param_rows": rows,
            "connections": lookup_connections(request, user),
            "create_apps": list(_lookup_apps(request).items()),
            "record_fields": _record_fields(request, user, flow, name),
            "on_missing_choices": edit.ON_MISSING_CHOICES,
            "cache_defaults": LookupCache(),
            "preview": result, "problems": problems,
            "has_source": flow.definition.export is not None}


def _missing(flow: FlowPublic, index: int, user: WebUser) -> Response | None:
    if 0 <= index < len(edit.lookups_of(flow.definition.as_written())):
        return None
    return not_found(user, NotFound(f"The flow '{flow.name}' has no lookup {index + 1}."))


# ---- the pane --------------------------------------------------------------------------------

@router.get(LIST_PATH + "/{flow_id}/lookups/new")
def new_lookup_pane(request: Request, flow_id: str, user: SignedIn,
                    connection: str = "") -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    values, rows = typed_values(request.query_params) or ({}, param_rows({}, ""))
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
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    missing = _missing(flow, index, user)
    if missing is not None:
        return missing
    lookup = edit.lookups_of(flow.definition.as_written())[index]
    values = values_of(lookup)
    rows = param_rows(_params_written(lookup), values.get("lookup.query", ""))
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
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    index = int(form_text(form, "index")) if form_text(form, "index").isdigit() else None
    if index is not None and (missing := _missing(flow, index, user)) is not None:
        return missing
    apps = _lookup_apps(request)
    app = form_text(form, "app") if form_text(form, "app") in apps else next(iter(apps), "")
    values = {key: form_text(form, key) for key in TYPED}
    rows = typed_rows(_texts(form, "param"), _texts(form, "param_field"), "")
    back = typed_return(flow.id, index, values, rows)
    target = f"/connections/new/{app}?return_to=" + quote(back, safe="")
    if is_htmx(request):
        location = json.dumps({"path": target, "target": "#" + PANE_TARGET})
        return Response(status_code=200, headers={"HX-Location": location})
    return RedirectResponse(target, status_code=303)


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
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    missing = _missing(flow, index, user)
    if missing is not None:
        return missing
    return _save(request, user, flow, index, form)


@router.post(LIST_PATH + "/{flow_id}/lookups/{index}/delete")
def remove_lookup(request: Request, flow_id: str, index: int, user: MayEditFlows,
                  _: CheckedForm) -> Response:
    flow = find_flow(request, user, flow_id)
    if isinstance(flow, Response):
        return flow
    missing = _missing(flow, index, user)
    if missing is not None:
        return missing
    doc = edit.without_lookup(flow.definition.as_written(), index)
    try:
        runtime_of(request).flows.update(user.principal, flow_id, doc, unfinished=True)
    except ValidationFailed as exc:
        text = "; ".join(f"{p.field}: {p.message}" for p in exc.problems)
        return builder_page(request, user, flow, status=422, notice=Notice("error", text))
    return go(request, f"{builder_url(flow_id)}?done={REMOVED}")


# ---- saving ----------------------------------------------------------------------------------

def _save(request: Request, user: WebUser, flow: FlowPublic, index: int | None,
          form: FormData) -> Response:
    values = {key: form_text(form, key) for key in FORM_FIELDS}
    names, fields = _texts(form, "param"), _texts(form, "param_field")
    params = edit.params_of(names, fields)
    rows = typed_rows(names, fields, values["lookup.query"])
    unnamed = edit.unnamed_fields(names, fields)
    if unnamed:
        problem = FieldProblem(PARAMS, f"name the query parameter that takes "
                                       f"{', '.join(unnamed)} (e.g. customer for :customer)")
        return _refused(request, user, flow, index, values, rows, [problem])
    lookup = edit.lookup_settings(
        name=values["lookup.name"], connection=values["lookup.connection"],
        query=values["lookup.query"], params=params, key_column=values["lookup.key_column"],
        on_missing=values["lookup.on_missing"], cache_size=values["lookup.cache.size"],
        cache_ttl=values["lookup.cache.ttl_seconds"])
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
    rows = param_rows(params, values["lookup.query"])
    context = _context(request, user, flow, step, state, rows, sample=True)
    response = show_pane(request, user, flow, TEMPLATE, context, board=True)
    if index is None:
        response.headers["HX-Push-Url"] = pane_url(flow.id, step)
    return response


def _texts(form: FormData, key: str) -> list[str]:
    return [value for value in form.getlist(key) if isinstance(value, str)]


def pane_problems(problems: Sequence[FieldProblem], step: int) -> list[FieldProblem]:
    """The service's problems as the pane names them: ``steps.N.lookup.<field>`` of this
    lookup at its field (a parameter's at the parameters); others as they are."""
    prefix = f"steps.{step}."
    found = []
    for problem in problems:
        name = problem.field.removeprefix(prefix) if problem.field.startswith(prefix) else ""
        if name.startswith(PARAMS):
            name = PARAMS
        found.append(FieldProblem(name if name in FORM_FIELDS else problem.field,
                                  problem.message))
    return found


def _refused(request: Request, user: WebUser, flow: FlowPublic, index: int | None,
             values: dict[str, str], rows: list[tuple[str, str]],
             problems: list[FieldProblem]) -> Response:
    state = PaneState(values, FieldErrors.of(problems, FORM_FIELDS))
    context = _context(request, user, flow, index, state, rows, sample=False)
    return show_pane(request, user, flow, TEMPLATE, context, status=422)

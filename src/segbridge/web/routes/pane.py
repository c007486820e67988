"""The side pane: the Application list, then Create connection / edit a connection.

Buttons as the help page defines them: Test connection only tests (``test_draft``); Save
tests and commits and keeps the pane open, now editing the saved connection; Save & close
tests, commits and returns to the list; Close (in the browser) leaves without saving.

Created in place (from a flow, say): ``/connections/new[/<app>]?return_to=<local path>``.
Then Save and Save & close, on success, go to ``return_to`` with ``connection=<new id>``
added to its query (htmx: ``HX-Redirect``; a plain form: 303), and Close goes to
``return_to``. ``return_to`` is kept only when it is a path of this server (see
``local_path``); it travels through the form as a hidden field.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from segbridge.apps.base import Application, SettingKind, SettingSpec
from segbridge.connections.views import ConnectionPublic
from segbridge.core.errors import (
    ConnectionTestFailed,
    FieldProblem,
    NotFound,
    SegbridgeError,
    ValidationFailed,
)
from segbridge.web.auth import (
    CheckedForm,
    MayEditConnections,
    MayTestConnections,
    SignedIn,
    WebUser,
    form_text,
    runtime_of,
)
from segbridge.web.forms import (
    ConnectionForm,
    FieldErrors,
    advanced_fields,
    form_fields,
    setting_field,
)
from segbridge.web.listing import icon_for, ordered_applications
from segbridge.web.rendering import (
    html_response,
    htmx_target,
    is_htmx,
    render,
    render_text,
    scrub,
)
from segbridge.web.results import (
    ResultView,
    local_sandbox_url,
    result_view,
    with_local_url,
)
from segbridge.web.routes.connections import (
    LIST_PATH,
    Flash,
    connections_of,
    page_context,
    region_oob,
)

router = APIRouter(include_in_schema=False)
PANE_TARGET = "pane-host"
RESULTS_TARGET = "app-results"
NEW_PATH = LIST_PATH + "/new"
RETURN_TO = "return_to"
ADDRESS_CAUSES = frozenset({"dns", "refused", "tls", "timeout", "wrong_endpoint", "dropped",
                            "network", "not_allowed"})
KEY_CAUSES = frozenset({"write_key_rejected", "key_unknown", "http_400"})
_UNSAFE_PATH = re.compile(r"[\x00-\x20\x7f\\]")


def local_path(value: str | None) -> str | None:
    """``value`` when it is a path on this server (one leading "/", no scheme or host, no
    backslash, no control character or space), else None: a return address is never sent
    anywhere else."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return None
    if _UNSAFE_PATH.search(value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.fragment:
        return None
    return value


def with_connection(return_to: str, connection_id: str) -> str:
    """``return_to`` with ``connection=<id>`` in its query (replacing one already there)."""
    parts = urlsplit(return_to)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != "connection"]
    query.append(("connection", connection_id))
    return f"{parts.path}?{urlencode(query)}"


def _go(request: Request, url: str) -> Response:
    """Leave the pane for ``url``: htmx follows ``HX-Redirect``, a plain form a 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@dataclass(frozen=True)
class Banner:
    tone: str  # ok | error
    text: str


@dataclass(frozen=True)
class Outcome:
    """What a Test or Save produced, for the pane to show."""

    errors: FieldErrors
    result: ResultView | None = None
    banner: Banner | None = None


# ---- responses -------------------------------------------------------------------------------

def pane_response(request: Request, user: WebUser, template: str, context: Mapping[str, Any],
                  *, status: int = 200, headers: Mapping[str, str] | None = None,
                  secrets: list[str] | None = None) -> Response:
    """The pane alone for htmx, else the Connections page with the pane open over it."""
    if htmx_target(request) == PANE_TARGET:
        return render(template, status=status, headers=headers, secrets=secrets or [],
                      user=user, **context)
    page = page_context(request, user, pane_template=template, pane_page=LIST_PATH, **context)
    return render("connections/page.html", status=status, headers=headers,
                  secrets=secrets or [], **page)


def _application(request: Request, key: str) -> Application:
    application = runtime_of(request).registry.get(key)
    if application is None:
        raise NotFound(f"There is no application '{key}'.")
    return application


def _not_found(user: WebUser, exc: SegbridgeError) -> Response:
    return render("error.html", status=404, user=user, heading="Not found", message=exc.message)


# ---- the Application list --------------------------------------------------------------------

@router.get(NEW_PATH)
def choose_application(request: Request, user: MayEditConnections, q: str = "",
                       return_to: str | None = None) -> Response:
    back = local_path(return_to)
    suffix = "?" + urlencode({RETURN_TO: back}) if back else ""
    applications = [{"key": app.key, "name": app.name, "description": app.description,
                     "icon": icon_for(app.key), "url": f"{NEW_PATH}/{app.key}{suffix}"}
                     for app in ordered_applications(runtime_of(request).registry, q)]
    context: dict[str, Any] = {"applications": applications, "query": q.strip(),
                               "return_to": back, "close_url": back or LIST_PATH}
    if htmx_target(request) == RESULTS_TARGET:
        return render("pane/_app_results.html", user=user, **context)
    return pane_response(request, user, "pane/applications.html", context)


# ---- Create connection -----------------------------------------------------------------------

@router.get(NEW_PATH + "/{app_key}")
def create_pane(request: Request, app_key: str, user: MayEditConnections,
                return_to: str | None = None) -> Response:
    try:
        application = _application(request, app_key)
    except NotFound as exc:
        return _not_found(user, exc)
    context = _pane(request, user, application, ConnectionForm.blank(application),
                    return_to=local_path(return_to))
    return pane_response(request, user, "pane/connection.html", context)


@router.post(NEW_PATH + "/{app_key}/test")
def test_new(request: Request, app_key: str, user: MayTestConnections,
             form: CheckedForm) -> Response:
    try:
        application = _application(request, app_key)
    except NotFound as exc:
        return _not_found(user, exc)
    return _test(request, user, application, ConnectionForm.parse(form, application), None,
                 return_to=local_path(form_text(form, RETURN_TO)))


@router.post(NEW_PATH + "/{app_key}")
def save_new(request: Request, app_key: str, user: MayEditConnections,
             form: CheckedForm) -> Response:
    try:
        application = _application(request, app_key)
    except NotFound as exc:
        return _not_found(user, exc)
    entered = ConnectionForm.parse(form, application)
    return _save(request, user, application, entered, None, close=_closing(form_text(form, "then")),
                 return_to=local_path(form_text(form, RETURN_TO)))


# ---- editing ---------------------------------------------------------------------------------

def _existing(request: Request, user: WebUser, connection_id: str
              ) -> tuple[ConnectionPublic, Application] | Response:
    """The saved connection and its application, or the not-found page."""
    try:
        connection = runtime_of(request).connections.get(user.principal, connection_id)
        return connection, _application(request, connection.application)
    except NotFound as exc:
        return _not_found(user, exc)


@router.get(LIST_PATH + "/{connection_id}")
def edit_pane(request: Request, connection_id: str, user: SignedIn,
              saved: str | None = None) -> Response:
    found = _existing(request, user, connection_id)
    if isinstance(found, Response):
        return found
    connection, application = found
    form = ConnectionForm.from_connection(connection.as_json(), application)
    banner = Banner("ok", f"Saved '{connection.name}'.") if saved else None
    context = _pane(request, user, application, form, connection=connection,
                    outcome=Outcome(FieldErrors.none(), banner=banner))
    return pane_response(request, user, "pane/connection.html", context)


@router.post(LIST_PATH + "/{connection_id}/test")
def test_existing(request: Request, connection_id: str, user: MayTestConnections,
                  form: CheckedForm) -> Response:
    found = _existing(request, user, connection_id)
    if isinstance(found, Response):
        return found
    connection, application = found
    return _test(request, user, application, ConnectionForm.parse(form, application), connection)


@router.post(LIST_PATH + "/{connection_id}")
def save_existing(request: Request, connection_id: str, user: MayEditConnections,
                  form: CheckedForm) -> Response:
    found = _existing(request, user, connection_id)
    if isinstance(found, Response):
        return found
    connection, application = found
    entered = ConnectionForm.parse(form, application)
    return _save(request, user, application, entered, connection,
                 close=_closing(form_text(form, "then")))


def _closing(then: str) -> bool:
    return then == "close"


# ---- Test connection -------------------------------------------------------------------------

def _test(request: Request, user: WebUser, application: Application, entered: ConnectionForm,
          connection: ConnectionPublic | None, *, return_to: str | None = None) -> Response:
    outcome = _run_test(request, user, application, entered)
    status = 422 if outcome.errors else 200
    secrets = entered.secret_values()
    if not is_htmx(request):
        context = _pane(request, user, application, entered, connection=connection,
                        outcome=outcome, dirty=True, return_to=return_to)
        return pane_response(request, user, "pane/connection.html", context, status=status,
                             secrets=secrets)
    html = render_text("pane/_result.html", secrets=secrets, result=outcome.result,
                       general=outcome.errors.general, fields_wrong=bool(outcome.errors.by_field),
                       result_is_last_test=False, sandbox_url=local_sandbox_url(request))
    html += render_text("pane/_errors_oob.html", secrets=secrets, errors=outcome.errors,
                        fields=form_fields(application))
    headers = {"HX-Retarget": "#test-result", "HX-Reswap": "outerHTML"}
    return html_response(html, status=status, headers=headers)


def _run_test(request: Request, user: WebUser, application: Application,
              entered: ConnectionForm) -> Outcome:
    draft, problems = entered.draft(application.key)
    fields = form_fields(application)
    if problems:
        return Outcome(FieldErrors.of(problems, fields))
    try:
        ping = runtime_of(request).connections.test_draft(
            user.principal, draft)
    except ValidationFailed as exc:
        return Outcome(_field_errors(request, exc.problems, fields))
    except SegbridgeError as exc:
        return Outcome(FieldErrors.of([FieldProblem("form", exc.message)], ()))
    return Outcome(FieldErrors.none(),
                   result=result_view(ping.public(), request, entered.first_secret(),
                                  account_id=user.principal.account_id))


# ---- Save / Save & close ---------------------------------------------------------------------

def _save(request: Request, user: WebUser, application: Application, entered: ConnectionForm,
          existing: ConnectionPublic | None, *, close: bool,
          return_to: str | None = None) -> Response:
    service = runtime_of(request).connections
    draft, problems = entered.draft(application.key)
    fields = form_fields(application)
    try:
        if problems:
            raise ValidationFailed(problems)
        if existing is None:
            saved, ping = service.create(user.principal, draft)
        else:
            saved, ping = service.update(user.principal, existing.id, draft)
    except ValidationFailed as exc:
        outcome = Outcome(_field_errors(request, exc.problems, fields), banner=Banner(
            "error", "Not saved: fix the highlighted fields."))
        return _save_failed(request, user, application, entered, existing, outcome, return_to)
    except ConnectionTestFailed as exc:
        details = exc.details or {}
        outcome = Outcome(FieldErrors.of(_test_problems(application, entered, details), fields),
                          banner=Banner("error", with_local_url(exc.message,
                                                                local_sandbox_url(request))),
                          result=result_view(details, request, entered.first_secret(),
                                             account_id=user.principal.account_id))
        return _save_failed(request, user, application, entered, existing, outcome, return_to)
    except NotFound as exc:
        return _not_found(user, exc)
    if return_to:
        return _go(request, with_connection(return_to, saved.id))
    result = result_view(ping.public(), request, entered.first_secret(),
                         account_id=user.principal.account_id)
    if close:
        return _saved_and_closed(request, user, saved, result, entered)
    return _saved_and_open(request, user, application, saved, result, entered)


def _save_failed(request: Request, user: WebUser, application: Application,
                 entered: ConnectionForm, existing: ConnectionPublic | None,
                 outcome: Outcome, return_to: str | None) -> Response:
    context = _pane(request, user, application, entered, connection=existing, outcome=outcome,
                    dirty=True, return_to=return_to)
    return pane_response(request, user, "pane/connection.html", context, status=422,
                         secrets=entered.secret_values())


def _saved_and_open(request: Request, user: WebUser, application: Application,
                    saved: ConnectionPublic, result: ResultView,
                    entered: ConnectionForm) -> Response:
    path = f"{LIST_PATH}/{saved.id}"
    if not is_htmx(request):
        return RedirectResponse(f"{path}?saved=1", status_code=303)
    form = ConnectionForm.from_connection(saved.as_json(), application)
    banner = Banner("ok", f"Saved '{saved.name}'. It is {saved.status}; the pane now "
                          "edits the saved connection.")
    context = _pane(request, user, application, form, connection=saved,
                    outcome=Outcome(FieldErrors.none(), result=result, banner=banner))
    secrets = entered.secret_values()
    html = render_text("pane/connection.html", secrets=secrets, user=user, **context)
    html += region_oob(request, user)
    return html_response(scrub(html, secrets), headers={"HX-Push-Url": path})


def _saved_and_closed(request: Request, user: WebUser, saved: ConnectionPublic,
                      result: ResultView, entered: ConnectionForm) -> Response:
    if not is_htmx(request):
        return RedirectResponse(f"{LIST_PATH}?saved={saved.id}", status_code=303)
    link = result.debugger.url if result.debugger else None
    text = f"Saved '{saved.name}'. It is {saved.status}. {result.message}"
    flash = Flash("ok", text, link, "Open the Debugger" if link else "")
    html = scrub(region_oob(request, user, flash), entered.secret_values())
    return html_response(html, headers={"HX-Push-Url": LIST_PATH})


# ---- the pane's context ----------------------------------------------------------------------

def _pane(request: Request, user: WebUser, application: Application, form: ConnectionForm,
          *, connection: ConnectionPublic | None = None, outcome: Outcome | None = None,
          dirty: bool = False, return_to: str | None = None) -> dict[str, Any]:
    outcome = outcome or Outcome(FieldErrors.none())
    own_id = connection.id if connection else None
    base = f"{LIST_PATH}/{own_id}" if own_id else f"{NEW_PATH}/{application.key}"
    lenders = [c for c in connections_of(request, user)
               if c.application == application.key and c.id != own_id]
    last = connection.last_test.as_json() if connection and connection.last_test else None
    result = outcome.result or (result_view(last, request, account_id=user.principal.account_id)
                                if last else None)
    return {
        "mode": "edit" if connection else "create",
        "application": application, "icon": icon_for(application.key),
        "form": form, "connection": connection, "lenders": lenders,
        "required_settings": _shown(application.settings, False, request),
        "advanced_settings": _shown(application.settings, True, request),
        "errors": outcome.errors, "banner": outcome.banner, "result": result,
        "result_is_last_test": outcome.result is None and last is not None,
        "open_advanced": outcome.errors.any_in(advanced_fields(application)),
        "dirty": dirty, "save_url": base, "test_url": base + "/test",
        "sandbox_url": local_sandbox_url(request),
        "return_to": return_to, "close_url": return_to or LIST_PATH,
    }


# ---- this server's Local Segment ---------------------------------------------------------------

def _shown(specs: Iterable[SettingSpec], advanced: bool, request: Request) -> list[SettingSpec]:
    """The settings of one section, their help naming this server's real Local Segment."""
    sandbox = local_sandbox_url(request)
    return [dataclasses.replace(spec, help=with_local_url(spec.help, sandbox))
            for spec in specs if spec.advanced == advanced]


def _field_errors(request: Request, problems: Iterable[FieldProblem],
                  fields: Iterable[str]) -> FieldErrors:
    sandbox = local_sandbox_url(request)
    return FieldErrors.of([FieldProblem(p.field, with_local_url(p.message, sandbox))
                           for p in problems], fields)


def _test_problems(application: Application, entered: ConnectionForm,
                   details: Mapping[str, Any]) -> list[FieldProblem]:
    """A failed test at Save, pinned on the field it points at (the address or the key), so
    the section holding that field opens and the field gets the focus."""
    cause = str(details.get("cause") or "")
    if cause in KEY_CAUSES:
        return [FieldProblem(setting_field(spec), "the test says this key is wrong: "
                             "see the message above")
                for spec in application.settings if spec.secret]
    if cause in ADDRESS_CAUSES:
        return [FieldProblem(setting_field(spec), "the test could not use this address: "
                             "see the message above")
                for spec in application.settings
                if spec.kind is SettingKind.URL and entered.settings.get(spec.name, "").strip()]
    return []

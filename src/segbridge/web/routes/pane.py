"""The side pane: the Application list, then Create connection / edit a connection.

Buttons as the help page defines them: Test connection only tests (``test_draft``); Save
tests and commits and keeps the pane open, now editing the saved connection; Save & close
tests, commits and returns to the list; Close (in the browser) leaves without saving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from segbridge.apps.base import Application
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
from segbridge.web.results import ResultView, local_sandbox_url, result_view
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
    page = page_context(request, user, pane_template=template, **context)
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
def choose_application(request: Request, user: MayEditConnections, q: str = "") -> Response:
    applications = [{"key": app.key, "name": app.name, "description": app.description,
                     "icon": icon_for(app.key)}
                     for app in ordered_applications(runtime_of(request).registry, q)]
    context: dict[str, Any] = {"applications": applications, "query": q.strip()}
    if htmx_target(request) == RESULTS_TARGET:
        return render("pane/_app_results.html", user=user, **context)
    return pane_response(request, user, "pane/applications.html", context)


# ---- Create connection -----------------------------------------------------------------------

@router.get(NEW_PATH + "/{app_key}")
def create_pane(request: Request, app_key: str, user: MayEditConnections) -> Response:
    try:
        application = _application(request, app_key)
    except NotFound as exc:
        return _not_found(user, exc)
    context = _pane(request, user, application, ConnectionForm.blank(application))
    return pane_response(request, user, "pane/connection.html", context)


@router.post(NEW_PATH + "/{app_key}/test")
def test_new(request: Request, app_key: str, user: MayTestConnections,
             form: CheckedForm) -> Response:
    try:
        application = _application(request, app_key)
    except NotFound as exc:
        return _not_found(user, exc)
    return _test(request, user, application, ConnectionForm.parse(form, application), None)


@router.post(NEW_PATH + "/{app_key}")
def save_new(request: Request, app_key: str, user: MayEditConnections,
             form: CheckedForm) -> Response:
    try:
        application = _application(request, app_key)
    except NotFound as exc:
        return _not_found(user, exc)
    entered = ConnectionForm.parse(form, application)
    return _save(request, user, application, entered, None, close=_closing(form_text(form, "then")))


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
          connection: ConnectionPublic | None) -> Response:
    outcome = _run_test(request, user, application, entered)
    status = 422 if outcome.errors else 200
    secrets = entered.secret_values()
    if not is_htmx(request):
        context = _pane(request, user, application, entered, connection=connection,
                        outcome=outcome, dirty=True)
        return pane_response(request, user, "pane/connection.html", context, status=status,
                             secrets=secrets)
    html = render_text("pane/_result.html", secrets=secrets, result=outcome.result,
                       general=outcome.errors.general, fields_wrong=bool(outcome.errors.by_field),
                       result_is_last_test=False)
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
        ping = runtime_of(request).connections.test_draft(user.principal, draft)
    except ValidationFailed as exc:
        return Outcome(FieldErrors.of(exc.problems, fields))
    except SegbridgeError as exc:
        return Outcome(FieldErrors.of([FieldProblem("form", exc.message)], ()))
    return Outcome(FieldErrors.none(),
                   result=result_view(ping.public(), request, entered.first_secret(),
                                  account_id=user.principal.account_id))


# ---- Save / Save & close ---------------------------------------------------------------------

def _save(request: Request, user: WebUser, application: Application, entered: ConnectionForm,
          existing: ConnectionPublic | None, *, close: bool) -> Response:
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
        outcome = Outcome(FieldErrors.of(exc.problems, fields), banner=Banner(
            "error", "Not saved: fix the highlighted fields and enter the write key again."))
        return _save_failed(request, user, application, entered, existing, outcome)
    except ConnectionTestFailed as exc:
        outcome = Outcome(FieldErrors.none(), banner=Banner("error", exc.message),
                          result=result_view(exc.details or {}, request, entered.first_secret(),
                                      account_id=user.principal.account_id))
        return _save_failed(request, user, application, entered, existing, outcome)
    except NotFound as exc:
        return _not_found(user, exc)
    result = result_view(ping.public(), request, entered.first_secret(),
                                  account_id=user.principal.account_id)
    if close:
        return _saved_and_closed(request, user, saved, result, entered)
    return _saved_and_open(request, user, application, saved, result, entered)


def _save_failed(request: Request, user: WebUser, application: Application,
                 entered: ConnectionForm, existing: ConnectionPublic | None,
                 outcome: Outcome) -> Response:
    context = _pane(request, user, application, entered, connection=existing, outcome=outcome,
                    dirty=True)
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
          dirty: bool = False) -> dict[str, Any]:
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
        "required_settings": [s for s in application.settings if not s.advanced],
        "advanced_settings": [s for s in application.settings if s.advanced],
        "errors": outcome.errors, "banner": outcome.banner, "result": result,
        "result_is_last_test": outcome.result is None and last is not None,
        "open_advanced": outcome.errors.any_in(advanced_fields(application)),
        "dirty": dirty, "save_url": base, "test_url": base + "/test",
        "sandbox_url": local_sandbox_url(request),
    }

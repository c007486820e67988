"""Integrations: the list (flows, last run, open errors), create, rename, delete, and an
integration's page listing its flows and the connections registered to it.

Plain forms, each with the session's CSRF token; a success answers 303 to a page that says
what was done, a refusal answers the page again with the reason and nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from segbridge.accounts.service import Principal
from segbridge.core.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from segbridge.flows.views import FlowPublic, IntegrationPublic, RunPublic
from segbridge.runs.counts import RecordErrorStatus
from segbridge.storage.models import RecordErrorRow
from segbridge.web.auth import CheckedForm, MayEditFlows, SignedIn, WebUser, form_text, runtime_of
from segbridge.web.forms import FieldErrors
from segbridge.web.listing import ago
from segbridge.web.rendering import render

router = APIRouter(include_in_schema=False)
LIST_PATH = "/integrations"
NAME = "name"
DONE = {"created": "The integration was created. Add its first flow.",
        "renamed": "The integration was renamed.",
        "deleted": "The integration was deleted."}


@dataclass(frozen=True)
class LastRun:
    """A flow's latest run, as a line shows it: status, and when (with its ISO time)."""

    id: str
    status: str
    at: str | None
    when: str
    flow_name: str

    @classmethod
    def of(cls, run: RunPublic, flow_name: str, now: datetime) -> LastRun:
        at = run.started_at or run.created_at
        return cls(run.id, run.status, at, ago(at, now), flow_name)


@dataclass(frozen=True)
class FlowLine:
    flow: FlowPublic
    last_run: LastRun | None
    open_errors: int


@dataclass(frozen=True)
class IntegrationLine:
    integration: IntegrationPublic
    flows: list[FlowLine]
    last_run: LastRun | None  # the latest of its flows' last runs
    open_errors: int  # over its flows


def open_error_counts(request: Request, principal: Principal) -> dict[str, int]:
    """Open record errors per flow of the account, in one query."""
    with runtime_of(request).db.session() as session:
        rows = session.execute(
            select(RecordErrorRow.flow_id, func.count()).where(
                RecordErrorRow.account_id == principal.account_id,
                RecordErrorRow.status == RecordErrorStatus.OPEN)
            .group_by(RecordErrorRow.flow_id))
        return {flow_id: int(count) for flow_id, count in rows}


def flow_lines(request: Request, principal: Principal) -> dict[str, list[FlowLine]]:
    """Every flow of the account as a line, by integration id, in name order."""
    now = datetime.now(UTC)
    errors = open_error_counts(request, principal)
    lines: dict[str, list[FlowLine]] = {}
    for flow in runtime_of(request).flows.list_all(principal):
        last = LastRun.of(flow.last_run, flow.name, now) if flow.last_run else None
        lines.setdefault(flow.integration_id, []).append(
            FlowLine(flow, last, errors.get(flow.id, 0)))
    for group in lines.values():
        group.sort(key=lambda line: line.flow.name.casefold())
    return lines


def latest(flows: Iterable[FlowLine]) -> LastRun | None:
    runs = [line.last_run for line in flows if line.last_run and line.last_run.at]
    return max(runs, key=lambda run: run.at or "", default=None)


def integration_line(integration: IntegrationPublic, flows: list[FlowLine]) -> IntegrationLine:
    return IntegrationLine(integration, flows, latest(flows),
                           sum(line.open_errors for line in flows))


def field_errors(exc: ValidationFailed | Conflict) -> FieldErrors:
    """A name problem next to the name field (a taken name is a Conflict naming the field)."""
    if isinstance(exc, ValidationFailed):
        return FieldErrors.of(exc.problems, (NAME,))
    return FieldErrors.of([FieldProblem(NAME, exc.message)], (NAME,))


# ---- the list -------------------------------------------------------------------------------

@router.get(LIST_PATH)
def integration_list(request: Request, user: SignedIn, done: str = "") -> Response:
    return _list_page(request, user, flash=DONE.get(done))


@router.post(LIST_PATH)
def create_integration(request: Request, user: MayEditFlows, form: CheckedForm) -> Response:
    name = form_text(form, NAME)
    try:
        created = runtime_of(request).integrations.create(user.principal, name)
    except (ValidationFailed, Conflict) as exc:
        return _list_page(request, user, status=422, name=name, errors=field_errors(exc))
    return RedirectResponse(f"{LIST_PATH}/{created.id}?done=created", status_code=303)


def _list_page(request: Request, user: WebUser, *, status: int = 200,
               flash: str | None = None, name: str = "",
               errors: FieldErrors | None = None) -> Response:
    by_integration = flow_lines(request, user.principal)
    lines = [integration_line(integration, by_integration.get(integration.id, []))
             for integration in runtime_of(request).integrations.list_all(user.principal)]
    return render("integrations/list.html", status=status, user=user, nav="integrations",
                  lines=lines, flash=flash, name=name, errors=errors or FieldErrors.none())


# ---- one integration ------------------------------------------------------------------------

@router.get(LIST_PATH + "/{integration_id}")
def integration_page(request: Request, integration_id: str, user: SignedIn,
                     done: str = "") -> Response:
    return _integration_page(request, user, integration_id, flash=DONE.get(done))


@router.post(LIST_PATH + "/{integration_id}/rename")
def rename_integration(request: Request, integration_id: str, user: MayEditFlows,
                       form: CheckedForm) -> Response:
    name = form_text(form, NAME)
    try:
        runtime_of(request).integrations.rename(user.principal, integration_id, name)
    except (ValidationFailed, Conflict) as exc:
        return _integration_page(request, user, integration_id, status=422, name=name,
                                 errors=field_errors(exc))
    except NotFound as exc:
        return _not_found(user, exc)
    return RedirectResponse(f"{LIST_PATH}/{integration_id}?done=renamed", status_code=303)


@router.post(LIST_PATH + "/{integration_id}/delete")
def delete_integration(request: Request, integration_id: str, user: MayEditFlows,
                       _form: CheckedForm) -> Response:
    try:
        runtime_of(request).integrations.delete(user.principal, integration_id)
    except Conflict as exc:
        return _integration_page(request, user, integration_id, status=409,
                                 problem=exc.message)
    except NotFound as exc:
        return _not_found(user, exc)
    return RedirectResponse(f"{LIST_PATH}?done=deleted", status_code=303)


def _integration_page(request: Request, user: WebUser, integration_id: str, *,
                      status: int = 200, flash: str | None = None, problem: str | None = None,
                      name: str | None = None, errors: FieldErrors | None = None) -> Response:
    try:
        integration = runtime_of(request).integrations.get(user.principal, integration_id)
    except NotFound as exc:
        return _not_found(user, exc)
    flows = flow_lines(request, user.principal).get(integration.id, [])
    context: dict[str, Any] = {
        "user": user, "nav": "integrations", "line": integration_line(integration, flows),
        "flash": flash, "problem": problem,
        "name": integration.name if name is None else name,
        "errors": errors or FieldErrors.none()}
    return render("integrations/page.html", status=status, **context)


def _not_found(user: WebUser, exc: NotFound) -> Response:
    return render("error.html", status=404, user=user, heading="Not found",
                  message=exc.message)

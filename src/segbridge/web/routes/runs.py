"""Runs: the account's latest runs, and one run with its counts and open record errors.

Read-only pages over the flow service (flows are managed through the API and the CLI for
now). A run that is still going refreshes its status block every two seconds, and its errors
table with it (out of band), until it ends.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from segbridge.core.errors import NotFound
from segbridge.web.auth import SignedIn, runtime_of
from segbridge.web.rendering import htmx_target, render

router = APIRouter(include_in_schema=False)
ERRORS_SHOWN = 200
STATUS_TARGET = "run-status"


@router.get("/runs")
def run_list(request: Request, user: SignedIn) -> Response:
    runs = runtime_of(request).flows.recent_runs(user.principal)
    return render("runs/list.html", user=user, nav="runs", runs=runs)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, user: SignedIn) -> Response:
    flows = runtime_of(request).flows
    try:
        run = flows.get_run(user.principal, run_id)
    except NotFound as exc:
        return render("error.html", status=404, user=user, heading="Not found",
                      message=exc.message)
    errors = flows.list_errors(user.principal, run.flow_id, run_id=run_id,
                               limit=ERRORS_SHOWN)
    if htmx_target(request) == STATUS_TARGET:
        return render("runs/_poll.html", run=run, errors=errors, limit=ERRORS_SHOWN,
                      oob=True)
    flow = flows.get(user.principal, run.flow_id)
    return render("runs/page.html", user=user, nav="runs", run=run, flow=flow, errors=errors,
                  limit=ERRORS_SHOWN)

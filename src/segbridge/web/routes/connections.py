"""Resources > Connections: the list (search, sort), re-testing a saved connection, and
deleting one (refused, naming what uses it, while a flow uses it or it lends concurrency)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from segbridge.connections.views import ConnectionPublic
from segbridge.core.errors import Conflict, NotFound, SegbridgeError
from segbridge.web.auth import (
    CheckedForm,
    MayEditConnections,
    MayTestConnections,
    SignedIn,
    WebUser,
    runtime_of,
)
from segbridge.web.listing import DEFAULT_SORT, ListView, list_view, row
from segbridge.web.rendering import htmx_target, is_htmx, render, render_text

router = APIRouter(include_in_schema=False)
LIST_PATH = "/connections"
TABLE_TARGET = "connection-table"


@dataclass(frozen=True)
class Flash:
    """A message above the list, e.g. after Save & close."""

    tone: str  # ok | error
    text: str
    link_url: str | None = None
    link_text: str = ""


DONE = {"deleted": Flash("ok", "The connection was deleted.")}


def connections_of(request: Request, user: WebUser) -> list[ConnectionPublic]:
    return runtime_of(request).connections.list_all(user.principal)


def view_of(request: Request, connections: Iterable[ConnectionPublic], *, query: str = "",
            sort: str = DEFAULT_SORT, direction: str = "asc") -> ListView:
    return list_view(connections, runtime_of(request).registry, query=query, sort=sort,
                     direction=direction)


def page_context(request: Request, user: WebUser, **extra: Any) -> dict[str, Any]:
    """Everything the Connections page needs besides the pane."""
    view = view_of(request, connections_of(request, user))
    return {"user": user, "nav": "connections", "view": view, "flash": None,
            "pane_template": None, **extra}


def region_oob(request: Request, user: WebUser, flash: Flash | None = None) -> str:
    """The list, to swap in out of band after a save."""
    view = view_of(request, connections_of(request, user))
    return render_text("connections/_region.html", view=view, flash=flash, user=user, oob=True)


@router.get(LIST_PATH)
def connection_list(request: Request, user: SignedIn, q: str = "", sort: str = DEFAULT_SORT,
                    dir: str = "asc", saved: str | None = None, done: str = "") -> Response:
    view = view_of(request, connections_of(request, user), query=q, sort=sort, direction=dir)
    if htmx_target(request) == TABLE_TARGET:
        return render("connections/_table.html", view=view, user=user)
    flash = _saved_flash(view, saved) if saved else DONE.get(done)
    return render("connections/page.html", **page_context(request, user, view=view, flash=flash))


def _saved_flash(view: ListView, connection_id: str) -> Flash | None:
    for item in view.rows:
        if item.id == connection_id:
            return Flash("ok", f"Saved '{item.name}'. It is {item.status}.")
    return None


@router.post(LIST_PATH + "/{connection_id}/retest")
def retest(request: Request, connection_id: str, user: MayTestConnections,
           _form: CheckedForm) -> Response:
    """Test a saved connection with its stored settings (Test on a row of the list)."""
    service = runtime_of(request).connections
    try:
        service.test_saved(user.principal, connection_id)
        connection = service.get(user.principal, connection_id)
    except NotFound as exc:
        if is_htmx(request):
            return render("connections/_gone.html", user=user)
        return render("error.html", status=404, user=user, heading="Not found",
                      message=exc.message)
    except SegbridgeError as exc:
        return render("error.html", status=exc.http_status, user=user,
                      heading="The test could not run", message=exc.message)
    if not is_htmx(request):
        return RedirectResponse(LIST_PATH, status_code=303)
    item = row(connection, runtime_of(request).registry, datetime.now(UTC))
    return render("connections/_row.html", row=item, user=user)


@router.post(LIST_PATH + "/{connection_id}/delete")
def delete(request: Request, connection_id: str, user: MayEditConnections,
           _form: CheckedForm) -> Response:
    """Delete a connection (its row's Delete, confirmed); refused while anything uses it."""
    try:
        runtime_of(request).connections.delete(user.principal, connection_id)
    except (Conflict, NotFound) as exc:
        status = 409 if isinstance(exc, Conflict) else 404
        return render("connections/page.html", status=status,
                      **page_context(request, user, flash=Flash("error", exc.message)))
    return RedirectResponse(f"{LIST_PATH}?done=deleted", status_code=303)

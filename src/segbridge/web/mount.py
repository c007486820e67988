"""Mount the web UI into the segbridge app: page routes, static files, error handlers.

Call ``mount_web(app)`` before the API's auth router is included: the login page's
``GET /login`` also redeems the one-time ``/login?token=`` link.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from segbridge.web.auth import CsrfRejected, LoginRequired, PageForbidden, login_url
from segbridge.web.rendering import STATIC_DIR, STATIC_PREFIX, is_htmx, render
from segbridge.web.routes import account as account_pages
from segbridge.web.routes import (
    connections,
    flows,
    home,
    integrations,
    login,
    mapping,
    pane,
    runs,
    users,
)


def mount_web(app: FastAPI) -> None:
    app.include_router(login.router)
    app.include_router(account_pages.router)
    app.include_router(home.router)
    app.include_router(pane.router)  # /connections/new before /connections/{id}
    app.include_router(connections.router)
    app.include_router(integrations.router)
    app.include_router(flows.router)
    app.include_router(mapping.router)
    app.include_router(runs.router)
    app.include_router(users.router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="web-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(CsrfRejected, _csrf_rejected)
    app.add_exception_handler(PageForbidden, _page_forbidden)


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    target = login_url(exc.next_path)
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _csrf_rejected(request: Request, _exc: Exception) -> Response:
    # htmx does not swap a 403: have it reload the page, which carries a fresh token.
    headers = {"HX-Refresh": "true"} if is_htmx(request) else None
    return render("error.html", status=403, user=None, headers=headers,
                  heading="This form has expired",
                  message="The form was sent without this session's security token. Reload "
                          "the page and try again.")


async def _page_forbidden(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageForbidden)
    return render("error.html", status=403, user=exc.user, heading="Not allowed for your role",
                  message=exc.message)

"""Server-rendered pages: the sources list (Settings > API keys) and each source's Debugger.

Jinja2 with autoescaping; scripts and styles are static files served by the app, and a
Content-Security-Policy forbids anything else (no inline script, no CDN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from segbridge.sandbox.auth import SESSION_COOKIE, AccessPolicy
from segbridge.sandbox.responses import ApiError
from segbridge.sandbox.state import SandboxState
from segbridge.sandbox.store import SourceNotFound

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True))


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _ENV.get_template(template).render(base=_base(request), **context)
    return HTMLResponse(html, status, headers=SECURITY_HEADERS)


class Pages:
    def __init__(self, state: SandboxState, policy: AccessPolicy) -> None:
        self.state = state
        self.policy = policy

    def routes(self) -> list[Route]:
        return [
            Route("/sources", self.sources, methods=["GET"]),
            Route("/sources/{id}/debugger", self.debugger, methods=["GET"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
        ]

    def _denied(self, request: Request) -> Response | None:
        try:
            self.policy.require_manage(request)
        except ApiError as err:
            if self.policy.uses_login:
                return RedirectResponse(f"{_base(request)}/login", 303)
            return render(
                request, "message.html", err.status, heading="Not allowed", message=err.message
            )
        return None

    async def sources(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied:
            return denied
        return render(request, "sources.html", sources=self.state.store.list())

    async def debugger(self, request: Request) -> Response:
        denied = self._denied(request)
        if denied:
            return denied
        try:
            source = self.state.store.get(request.path_params["id"])
        except SourceNotFound:
            message = "There is no source with this id."
            return render(request, "message.html", 404, heading="No such source", message=message)
        return render(request, "debugger.html", source=source, size=self.state.config.debugger_size)

    async def login_form(self, request: Request) -> Response:
        return render(request, "login.html", enabled=self.policy.uses_login, error=None)

    async def login(self, request: Request) -> Response:
        if not self.policy.uses_login:
            return render(request, "login.html", 404, enabled=False, error=None)
        form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        if not self.policy.token_matches(token):
            return render(request, "login.html", 401, enabled=True, error="Wrong admin token.")
        response = RedirectResponse(f"{_base(request)}/sources", 303)
        response.set_cookie(
            SESSION_COOKIE,
            self.policy.session_value(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path=_base(request) or "/",
        )
        return response

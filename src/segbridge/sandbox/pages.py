"""Server-rendered pages: the sources list (Settings > API keys, with forms to create, rename
and delete sources), each source's Debugger, and its "Try it" page (analytics.js loaded from
this receiver, a button per call).

Jinja2 with autoescaping; scripts and styles are static files served by the app, and a
Content-Security-Policy forbids anything else (no inline script, no CDN). The forms post to
page routes that call the same store functions as the JSON API, with the CSRF check of
``AccessPolicy.require_manage_form``, and answer with a redirect (post/redirect/get). Like the
API, the pages show and change only the caller's account's sources; a caller who may only
read (a monitor) sees no forms.

Standalone, each page is whole (``templates/base.html``). A host may set the pages in its own
layout (its top bar, navigation and styles): it passes ``layout``, which is given each page
in pieces (``HostedPage``: title, the main content, the stylesheets and scripts it needs)
and answers the response. The host's layout carries its own security headers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from segbridge.sandbox.analytics_js import library_version
from segbridge.sandbox.auth import CSRF_FIELD, SESSION_COOKIE, AccessPolicy, Caller
from segbridge.sandbox.limits import DEFAULT_SOURCE_NAME
from segbridge.sandbox.responses import ApiError
from segbridge.sandbox.state import SandboxState
from segbridge.sandbox.store import IMPLICIT_ACCOUNT, InvalidSourceName, Source, SourceNotFound

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
MAX_FORM_BYTES = 8 * 1024
_ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True))


STYLESHEET = "sandbox.css"


@dataclass(frozen=True, slots=True)
class HostedPage:
    """A page of the local Segment in pieces, for a host's layout: ``title`` (plain text),
    ``main`` (the page's content, HTML), the URLs of the ``stylesheets`` and ``scripts`` it
    needs (same origin; scripts are meant to load deferred), and the answer's ``status``."""

    title: str
    main: Markup
    stylesheets: tuple[str, ...]
    scripts: tuple[str, ...]
    status: int = 200


PageLayout = Callable[[Request, HostedPage], Response]


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, template: str, status: int = 200, *,
           layout: PageLayout | None = None, scripts: tuple[str, ...] = (),
           **context: Any) -> Response:
    """A page; ``mounted`` (a root path, e.g. /sandbox in segbridge) adds the way back.
    With a host's ``layout``, the host sets the page's pieces in its own layout."""
    base = _base(request)
    page = _ENV.get_template(template)
    values = {"base": base, "mounted": bool(base), "hosted": layout is not None,
              "scripts": [f"{base}/static/{name}" for name in scripts],
              "stylesheet": f"{base}/static/{STYLESHEET}", **context}
    if layout is None:
        return HTMLResponse(page.render(values), status, headers=SECURITY_HEADERS)
    blocks = page.new_context(values)
    return layout(request, HostedPage(
        title="".join(page.blocks["title"](blocks)).strip(),
        # rendered by the autoescaping environment: every value in it is already escaped
        main=Markup("".join(page.blocks["main"](blocks))),  # noqa: S704
        stylesheets=(values["stylesheet"],),
        scripts=tuple(values["scripts"]),
        status=status,
    ))


class FormTooLarge(Exception):
    pass


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """A posted urlencoded form (first value of each field), read up to ``limit`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormTooLarge
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    except ValueError as exc:  # more fields than any of these forms has
        raise FormTooLarge from exc
    return {name: values[0] for name, values in fields.items()}


class Pages:
    def __init__(self, state: SandboxState, policy: AccessPolicy,
                 layout: PageLayout | None = None) -> None:
        self.state = state
        self.policy = policy
        self.layout = layout

    def render(self, request: Request, template: str, status: int = 200, **context: Any
               ) -> Response:
        return render(request, template, status, layout=self.layout, **context)

    def routes(self) -> list[Route]:
        return [
            Route("/sources", self.sources, methods=["GET"]),
            Route("/sources", self.create_source, methods=["POST"]),
            Route("/sources/{id}/rename", self.rename_source, methods=["POST"]),
            Route("/sources/{id}/delete", self.delete_source, methods=["POST"]),
            Route("/sources/{id}/debugger", self.debugger, methods=["GET"]),
            Route("/sources/{id}/try", self.try_it, methods=["GET"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
        ]

    def _refusal(self, request: Request, err: ApiError) -> Response:
        if err.code == "csrf_failed":
            message = (
                "The form was sent without this session's security token. "
                "Reload the page and try again."
            )
            return self.render(
                request, "message.html", 403, heading="This form has expired", message=message
            )
        if self.policy.uses_login:
            return RedirectResponse(f"{_base(request)}/login", 303)
        return self.render(
            request, "message.html", err.status, heading="Not allowed", message=err.message
        )

    def _reader(self, request: Request) -> Caller | Response:
        """The caller (whose account, when new, gets its first source), or the refusal."""
        try:
            caller = self.policy.require_read(request)
        except ApiError as err:
            return self._refusal(request, err)
        if caller.account_id != IMPLICIT_ACCOUNT:
            self.state.store.open_workspace(caller.account_id, DEFAULT_SOURCE_NAME)
        return caller

    async def _form(self, request: Request) -> tuple[Caller, dict[str, str]] | Response:
        """The caller and the posted form once the manage and CSRF checks passed, or the
        refusal."""
        try:
            form = await read_form(request)
        except FormTooLarge:
            message = f"The form is over {MAX_FORM_BYTES:,} bytes."
            return self.render(
                request, "message.html", 413, heading="Form too large", message=message
            )
        try:
            caller = self.policy.require_manage_form(request, form.get(CSRF_FIELD, ""))
        except ApiError as err:
            return self._refusal(request, err)
        return caller, form

    def _sources_page(
        self,
        request: Request,
        caller: Caller,
        status: int = 200,
        *,
        notice: str | None = None,
        error: str | None = None,
        error_for: str | None = None,
        name: str = "",
    ) -> Response:
        """The sources page; ``error_for`` is "new" (the create form) or a source's id."""
        return self.render(
            request,
            "sources.html",
            status,
            scripts=("sources.js",),
            sources=self.state.store.list(caller.account_id),
            can_manage=caller.can_manage,
            can_see_events=caller.can_see_events,
            csrf=self.policy.form_token(request),
            csrf_field=CSRF_FIELD,
            notice=notice,
            error=error,
            error_for=error_for,
            name=name,
        )

    def _source_or_none(self, source_id: str, caller: Caller) -> Source | None:
        try:
            return self.state.store.get(source_id, caller.account_id)
        except SourceNotFound:
            return None

    def _no_such_source(self, request: Request) -> Response:
        message = "There is no source with this id."
        return self.render(request, "message.html", 404, heading="No such source", message=message)

    def _done(self, request: Request, what: str, source_id: str | None = None) -> Response:
        query = f"?{what}={source_id}" if source_id else f"?{what}=1"
        anchor = f"#source-{source_id}" if source_id else ""
        return RedirectResponse(f"{_base(request)}/sources{query}{anchor}", 303)

    async def sources(self, request: Request) -> Response:
        caller = self._reader(request)
        if isinstance(caller, Response):
            return caller
        params = request.query_params
        notice = None
        for what in ("created", "renamed"):
            source = self._source_or_none(params.get(what, ""), caller)
            if source is not None:
                notice = f"Source “{source.name}” {what}."
        if params.get("deleted"):
            notice = "Source deleted."
        return self._sources_page(request, caller, notice=notice)

    async def create_source(self, request: Request) -> Response:
        posted = await self._form(request)
        if isinstance(posted, Response):
            return posted
        caller, form = posted
        name = form.get("name", "")
        try:
            source = self.state.store.create(name, caller.account_id)
        except InvalidSourceName as err:
            return self._sources_page(
                request, caller, 422, error=str(err), error_for="new", name=name
            )
        return self._done(request, "created", source.id)

    async def rename_source(self, request: Request) -> Response:
        posted = await self._form(request)
        if isinstance(posted, Response):
            return posted
        caller, form = posted
        source_id = request.path_params["id"]
        name = form.get("name", "")
        try:
            self.state.store.rename(source_id, name, caller.account_id)
        except SourceNotFound:
            return self._no_such_source(request)
        except InvalidSourceName as err:
            return self._sources_page(
                request, caller, 422, error=str(err), error_for=source_id, name=name
            )
        return self._done(request, "renamed", source_id)

    async def delete_source(self, request: Request) -> Response:
        posted = await self._form(request)
        if isinstance(posted, Response):
            return posted
        caller, _ = posted
        try:
            self.state.delete_source(request.path_params["id"], caller.account_id)
        except SourceNotFound:
            return self._no_such_source(request)
        return self._done(request, "deleted")

    async def debugger(self, request: Request) -> Response:
        caller = self._reader(request)
        if isinstance(caller, Response):
            return caller
        source = self._source_or_none(request.path_params["id"], caller)
        if source is None:
            return self._no_such_source(request)
        if not caller.can_see_events:
            message = "Your role may see the sources and their counters, not the events' data."
            return self.render(request, "message.html", 403, heading="Not allowed", message=message)
        return self.render(
            request,
            "debugger.html",
            scripts=("debugger.js",),
            source=source,
            size=self.state.config.debugger_size,
            query=request.query_params.get("q", "").strip(),
        )

    async def try_it(self, request: Request) -> Response:
        """A page that loads analytics.js from this receiver with the source's write key."""
        caller = self._reader(request)
        if isinstance(caller, Response):
            return caller
        source = self._source_or_none(request.path_params["id"], caller)
        if source is None:
            return self._no_such_source(request)
        cdn = f"{request.url.scheme}://{request.url.netloc}{_base(request)}"
        return self.render(
            request, "try.html", scripts=("try.js",), source=source, cdn=cdn,
            version=library_version(),
        )

    async def login_form(self, request: Request) -> Response:
        return self.render(request, "login.html", enabled=self.policy.uses_login, error=None)

    async def login(self, request: Request) -> Response:
        if not self.policy.uses_login:
            return self.render(request, "login.html", 404, enabled=False, error=None)
        try:
            form = await read_form(request, 4096)
        except FormTooLarge:
            form = {}
        token = form.get("token", "").strip()
        if not self.policy.token_matches(token):
            return self.render(request, "login.html", 401, enabled=True, error="Wrong admin token.")
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

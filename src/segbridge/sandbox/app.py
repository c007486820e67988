"""Assembling the receiver: one Starlette app with the tracking API, management API and pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from segbridge.core.clock import SYSTEM_CLOCK, Clock
from segbridge.sandbox import analytics_js
from segbridge.sandbox.auth import AccessPolicy, Authorizer, CallerFor, CsrfTokenFor
from segbridge.sandbox.config import SandboxConfig
from segbridge.sandbox.limits import DEFAULT_SOURCE_NAME
from segbridge.sandbox.management import ManagementAPI
from segbridge.sandbox.pages import STATIC, PageLayout, Pages
from segbridge.sandbox.responses import ApiError, handle_api_error
from segbridge.sandbox.state import SandboxState, build_state
from segbridge.sandbox.store import (
    IMPLICIT_ACCOUNT,
    InvalidSourceName,
    Source,
    SourceNotFound,
    SourceStore,
)
from segbridge.sandbox.tracking import TrackingAPI, settings_endpoint


def create_sandbox_app(
    config: SandboxConfig,
    *,
    authorize: CallerFor | None = None,
    authorize_manage: Authorizer | None = None,
    authorize_admin: Authorizer | None = None,
    csrf_token: CsrfTokenFor | None = None,
    clock: Clock = SYSTEM_CLOCK,
    layout: PageLayout | None = None,
) -> Starlette:
    """The receiver as an ASGI app; its state is ``app.state.sandbox`` (a ``SandboxState``).

    Mounted, ``authorize`` is the host's check: the request's ``Caller`` (account, may manage,
    may set faults) or None; each account then has its own sources, Debugger and faults. A
    host of one namespace may pass ``authorize_manage`` and ``authorize_admin`` (yes/no)
    instead. ``csrf_token`` gives the CSRF token of a request's browser session (None without
    one) for the pages' forms: the host's own (see ``auth``). Injected faults measure their
    downtime on ``clock`` (tests share a simulated one with the client they test). A host's
    ``layout`` sets the pages in the host's own layout (see ``pages.HostedPage``).

    Standalone, the app's lifespan closes the state on shutdown. Mounted in another app (whose
    lifespan does not reach sub-apps), call ``app.state.sandbox.close()`` on shutdown, or
    build it with ``create_local_segment`` and close that.
    """
    state = build_state(config, clock)
    policy = AccessPolicy(
        config.admin_token, authorize_manage, authorize_admin, csrf_token, authorize
    )
    settings = settings_endpoint(state)
    tracking = TrackingAPI(state)
    routes: list[BaseRoute] = [
        # each with and without a trailing slash: Segment answers both (no 307 redirect)
        Route("/v1/projects/{write_key}/settings", settings, methods=["GET"]),
        Route("/v1/projects/{write_key}/settings/", settings, methods=["GET"]),
        Route("/v1/{call}", tracking, methods=["POST", "OPTIONS"]),
        Route("/v1/{call}/", tracking, methods=["POST", "OPTIONS"]),
        *analytics_js.routes(),
        *ManagementAPI(state, policy).routes(),
        *Pages(state, policy, layout).routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.close()

    handlers = {cls: handle_api_error for cls in (ApiError, SourceNotFound, InvalidSourceName)}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.sandbox = state
    return app


def ensure_default_source(
    app_or_store: Starlette | SandboxState | SourceStore, account_id: str = IMPLICIT_ACCOUNT
) -> Source:
    """The account's first source, created as "My first source" when it has none."""
    target = app_or_store.state.sandbox if isinstance(app_or_store, Starlette) else app_or_store
    store: SourceStore = target.store if isinstance(target, SandboxState) else target
    return store.first_or_create(DEFAULT_SOURCE_NAME, account_id)


@dataclass(frozen=True, slots=True)
class LocalSegment:
    """The receiver as a host mounts it: the ASGI app to mount, and the little the host asks
    of it (a source by write key, the first account's sources, closing on shutdown).

    ``state`` is the receiver's whole state, for tests and diagnostics; hosts use the methods.
    """

    app: Starlette
    state: SandboxState

    def source_for_key(self, write_key: str) -> Source | None:
        """The source with this write key, whichever account it is in (None: unknown key)."""
        return self.state.store.by_write_key(write_key)

    def adopt_sources(self, from_account: str, to_account: str) -> tuple[Source, ...]:
        """Move ``from_account``'s sources to ``to_account``; returns the moved sources."""
        return self.state.store.adopt(from_account, to_account)

    def ensure_default_source(self, account_id: str) -> Source:
        """The account's first source, created as "My first source" when it has none."""
        return ensure_default_source(self.state, account_id)

    def end_streams(self) -> None:
        """End the live Debugger streams, for a host whose server starts shutting down: they
        would otherwise hold it (see ``serving.ShutdownAwareServer``); from any thread."""
        self.state.end_streams()

    def close(self) -> None:
        """End live streams, flush the archive, close the state (a mounted app's lifespan
        does not run); safe more than once."""
        self.state.close()


def create_local_segment(
    config: SandboxConfig, *, authorize: CallerFor, csrf_token: CsrfTokenFor,
    layout: PageLayout | None = None,
) -> LocalSegment:
    """The receiver for a host that decides who calls (``authorize``: the request's
    ``Caller`` or None), gives its browser sessions' CSRF token (``csrf_token``) and may set
    the pages in its own layout (``layout``)."""
    app = create_sandbox_app(config, authorize=authorize, csrf_token=csrf_token, layout=layout)
    return LocalSegment(app, app.state.sandbox)

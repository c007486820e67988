"""A browser session over plain HTTP: the session cookie of a signed-in user and the CSRF
token its pages carry, for page tests that need no browser."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import SESSION_COOKIE, csrf_token_for
from segbridge.runtime import ADMIN_EMAIL
from tests.integration.conftest import Server


def session_token(server: Server, email: str = ADMIN_EMAIL) -> str:
    """A new browser session of ``email`` (as signing in makes one)."""
    with server.runtime.db.session() as session:
        user = accounts.find_user(session, email)
        return accounts.issue_token(session, user, kind="session", name="browser",
                                    ttl=accounts.SESSION_TTL)


@contextmanager
def browser(server: Server, email: str = ADMIN_EMAIL) -> Iterator[httpx.Client]:
    """A client holding a browser session of ``email``; ``X-Test-Csrf`` holds its CSRF token
    (a form sends it as ``csrf_token``)."""
    token = session_token(server, email)
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30,
                      cookies={SESSION_COOKIE: token}) as client:
        client.headers["X-Test-Csrf"] = csrf_token_for(token)
        yield client

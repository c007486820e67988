"""The browser session's cookie and its CSRF token, shared by the API, the pages and the
local Segment's host.

A browser signs in once and holds the session token in the ``segbridge_session`` cookie
(HttpOnly). Every change it sends carries the session's CSRF token, derived from the session
token so nothing more is stored: in the ``X-CSRF-Token`` header (the API, htmx) or in a form's
hidden ``csrf_token`` field (the pages, the local Segment's forms).
"""

from __future__ import annotations

import hashlib

SESSION_COOKIE = "segbridge_session"
CSRF_HEADER = "X-CSRF-Token"


def csrf_token_for(session_token: str) -> str:
    """The CSRF token of a browser session, derived so nothing more is stored."""
    return hashlib.sha256(f"csrf|{session_token}".encode()).hexdigest()[:40]


def csrf_token_of_cookies(cookies: dict[str, str]) -> str | None:
    """The CSRF token of the session in these request cookies (None without a session)."""
    session = cookies.get(SESSION_COOKIE)
    return csrf_token_for(session) if session else None

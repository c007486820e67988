"""Who may manage sources (and read the Debugger) and who may change faults.

Mounted in segbridge, the server passes its own checks (``authorize_manage`` and
``authorize_admin``, each ``Request -> bool``; False gives 403). Standalone, both levels need
``Authorization: Bearer <admin token>`` (401 without it); with no admin token configured they
are refused (403). So that a browser can open the standalone pages, ``POST /login`` with the
token sets a session cookie (HttpOnly, SameSite=Strict) that is accepted for reading only
(GET), never for changes and never for admin routes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from starlette.requests import Request

from segbridge.sandbox.responses import ApiError

Authorizer = Callable[[Request], bool]
SESSION_COOKIE = "segbridge_sandbox_session"
_READ_METHODS = ("GET", "HEAD")


class AccessPolicy:
    def __init__(
        self,
        admin_token: str | None,
        authorize_manage: Authorizer | None = None,
        authorize_admin: Authorizer | None = None,
    ) -> None:
        self._token = admin_token
        self._manage = authorize_manage
        self._admin = authorize_admin

    @property
    def uses_login(self) -> bool:
        """Whether the standalone login page is how a browser gets in."""
        return self._manage is None and self._token is not None

    def session_value(self) -> str:
        token = (self._token or "").encode()
        return hmac.new(token, b"segbridge-sandbox-session", hashlib.sha256).hexdigest()

    def token_matches(self, candidate: str) -> bool:
        return self._token is not None and hmac.compare_digest(
            candidate.encode(), self._token.encode()
        )

    def require_manage(self, request: Request) -> None:
        if self._manage is not None:
            if not self._manage(request):
                raise ApiError(403, "forbidden", "you may not manage sandbox sources")
            return
        if request.method in _READ_METHODS and self._has_session(request):
            return
        self._require_token(request)

    def require_admin(self, request: Request) -> None:
        if self._admin is not None:
            if not self._admin(request):
                raise ApiError(403, "forbidden", "this needs sandbox admin rights")
            return
        self._require_token(request)

    def _has_session(self, request: Request) -> bool:
        cookie = request.cookies.get(SESSION_COOKIE)
        return (
            self._token is not None
            and cookie is not None
            and hmac.compare_digest(cookie, self.session_value())
        )

    def _require_token(self, request: Request) -> None:
        if self._token is None:
            raise ApiError(403, "forbidden", "no admin token is configured: access is disabled")
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self.token_matches(credentials.strip()):
            raise ApiError(
                401,
                "unauthorized",
                "send Authorization: Bearer <admin token>",
                headers={"WWW-Authenticate": 'Bearer realm="segbridge sandbox"'},
            )

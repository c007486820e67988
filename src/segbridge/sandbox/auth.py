"""Who may manage sources (and read the Debugger) and who may change faults.

Mounted in segbridge, the server passes its own checks (``authorize_manage`` and
``authorize_admin``, each ``Request -> bool``; False gives 403). Standalone, both levels need
``Authorization: Bearer <admin token>`` (401 without it); with no admin token configured they
are refused (403). So that a browser can open the standalone pages, ``POST /login`` with the
token sets a session cookie (HttpOnly, SameSite=Strict) that is accepted for reading (GET)
and for the page forms that change sources, never for the JSON API's changes and never for
admin routes.

Page forms (create, rename, delete a source) carry a CSRF token in a hidden ``csrf_token``
field whenever the browser has a session: standalone, an HMAC of the session under the admin
token; mounted, the host's own token (``csrf_token``: ``Request -> str | None``; by default
segbridge's, derived from its ``segbridge_session`` cookie). A form whose token does not match
is refused (403). Mounted, the verified token is then handed to ``authorize_manage`` as the
``X-CSRF-Token`` header, as segbridge's own pages send it, so the host's check applies
unchanged. SameSite=Strict alone is not enough: another port of the same host is same-site.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
from collections.abc import Callable

from starlette.requests import Request

from segbridge.sandbox.responses import ApiError

Authorizer = Callable[[Request], bool]
CsrfTokenFor = Callable[[Request], str | None]
SESSION_COOKIE = "segbridge_sandbox_session"
SEGBRIDGE_SESSION_COOKIE = "segbridge_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_READ_METHODS = ("GET", "HEAD")


def segbridge_csrf_token(request: Request) -> str | None:
    """The CSRF token of the request's segbridge browser session (None without a session).

    The derivation is segbridge's own (``segbridge.api.deps.csrf_token_for``), imported when
    first needed so that the receiver keeps running (and type-checking) on its own.
    """
    session = request.cookies.get(SEGBRIDGE_SESSION_COOKIE)
    if not session:
        return None
    deps = importlib.import_module("segbridge.api.deps")
    return str(deps.csrf_token_for(session))


def _with_header(request: Request, name: str, value: str) -> Request:
    """A copy of the request with header ``name`` set to ``value`` (replacing any)."""
    key = name.lower().encode("latin-1")
    headers = [(k, v) for k, v in request.scope["headers"] if k != key]
    headers.append((key, value.encode("latin-1")))
    return Request({**request.scope, "headers": headers}, request.receive)


class AccessPolicy:
    def __init__(
        self,
        admin_token: str | None,
        authorize_manage: Authorizer | None = None,
        authorize_admin: Authorizer | None = None,
        csrf_token: CsrfTokenFor | None = None,
    ) -> None:
        self._token = admin_token
        self._manage = authorize_manage
        self._admin = authorize_admin
        if csrf_token is None and authorize_manage is not None:
            csrf_token = segbridge_csrf_token
        self._csrf = csrf_token

    @property
    def uses_login(self) -> bool:
        """Whether the standalone login page is how a browser gets in."""
        return self._manage is None and self._token is not None

    def session_value(self) -> str:
        token = (self._token or "").encode()
        return hmac.new(token, b"segbridge-sandbox-session", hashlib.sha256).hexdigest()

    def form_token(self, request: Request) -> str | None:
        """The CSRF token this browser's page forms carry; None when it has no session."""
        if self._manage is not None:
            return self._csrf(request) if self._csrf is not None else None
        if self._has_session(request):
            token = (self._token or "").encode()
            label = b"segbridge-sandbox-csrf|" + self.session_value().encode()
            return hmac.new(token, label, hashlib.sha256).hexdigest()
        return None

    def require_manage_form(self, request: Request, sent: str) -> None:
        """A page form's change: the CSRF token ``sent`` (for browser sessions), then manage.

        Raises ``ApiError`` 403 ``csrf_failed`` for a missing or wrong token, else as
        ``require_manage`` (which, standalone, also accepts the session for forms).
        """
        expected = self.form_token(request)
        if expected is not None and not (
            sent and hmac.compare_digest(sent.encode(), expected.encode())
        ):
            raise ApiError(403, "csrf_failed", "the form lacks this session's security token")
        if self._manage is not None:
            checked = request if expected is None else _with_header(request, CSRF_HEADER, expected)
            if not self._manage(checked):
                raise ApiError(403, "forbidden", "you may not manage sandbox sources")
            return
        if expected is not None:  # standalone: a signed-in browser with its token
            return
        self._require_token(request)

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

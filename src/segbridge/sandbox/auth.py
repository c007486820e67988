"""Who is calling, in which account, and whether they may read, manage sources or set faults.

Every check returns the ``Caller``: the account whose sources the request sees and changes
(``account_id``), whether it may change sources (``can_manage``) and faults (``can_admin``),
and see the Debugger's events (``can_see_events``). Reading source lists and counters needs
only a caller.

Mounted in segbridge, the server passes ``authorize`` (``Request -> Caller | None``; None gives
403): the signed-in user's account and role. Hosts of one namespace may instead pass
``authorize_manage`` and ``authorize_admin`` (``Request -> bool``): their callers are in the
implicit account. Standalone, both levels need
``Authorization: Bearer <admin token>`` (401 without it); with no admin token configured they
are refused (403). So that a browser can open the standalone pages, ``POST /login`` with the
token sets a session cookie (HttpOnly, SameSite=Strict) that is accepted for reading (GET)
and for the page forms that change sources, never for the JSON API's changes and never for
admin routes.

Page forms (create, rename, delete a source) carry a CSRF token in a hidden ``csrf_token``
field whenever the browser has a session: standalone, an HMAC of the session under the admin
token; mounted, the host's own token (``csrf_token``: ``Request -> str | None``, which the
host passes: segbridge's is derived from its ``segbridge_session`` cookie; without one, forms
carry none and the host's ``authorize`` alone decides). A form whose token does not match
is refused (403). Mounted, the verified token is then handed to ``authorize_manage`` as the
``X-CSRF-Token`` header, as segbridge's own pages send it, so the host's check applies
unchanged. SameSite=Strict alone is not enough: another port of the same host is same-site.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from segbridge.sandbox.responses import ApiError
from segbridge.sandbox.store import IMPLICIT_ACCOUNT


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls: the account whose sources they see, and what they may do with them.

    ``can_see_events``: the Debugger's events (the data sent); without it a caller sees the
    sources and their counters only (segbridge's monitor role).
    """

    account_id: str
    can_manage: bool
    can_admin: bool
    can_see_events: bool = True


Authorizer = Callable[[Request], bool]
CallerFor = Callable[[Request], "Caller | None"]
CsrfTokenFor = Callable[[Request], str | None]
SESSION_COOKIE = "segbridge_sandbox_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_READ_METHODS = ("GET", "HEAD")
_OWNER = Caller(IMPLICIT_ACCOUNT, can_manage=True, can_admin=True)  # stand-alone admin token


def one_namespace(manage: Authorizer | None, admin: Authorizer | None) -> CallerFor:
    """A ``CallerFor`` from a host's two yes/no checks: every caller in the implicit account."""

    def caller(request: Request) -> Caller | None:
        can_manage = manage is not None and manage(request)
        can_admin = admin is not None and admin(request)
        return Caller(IMPLICIT_ACCOUNT, can_manage, can_admin) if can_manage or can_admin else None

    return caller


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
        authorize: CallerFor | None = None,
    ) -> None:
        self._token = admin_token
        if authorize is None and authorize_manage is not None:
            authorize = one_namespace(authorize_manage, authorize_admin)
        self._authorize = authorize
        self._admin_only = authorize_manage is None and authorize_admin is not None
        self._admin = authorize_admin
        self._csrf = csrf_token

    @property
    def hosted(self) -> bool:
        """Whether a host (segbridge) decides who calls."""
        return self._authorize is not None

    @property
    def uses_login(self) -> bool:
        """Whether the standalone login page is how a browser gets in."""
        return not self.hosted and self._token is not None

    def session_value(self) -> str:
        token = (self._token or "").encode()
        return hmac.new(token, b"segbridge-sandbox-session", hashlib.sha256).hexdigest()

    def form_token(self, request: Request) -> str | None:
        """The CSRF token this browser's page forms carry; None when it has no session."""
        if self.hosted:
            return self._csrf(request) if self._csrf is not None else None
        if self._has_session(request):
            token = (self._token or "").encode()
            label = b"segbridge-sandbox-csrf|" + self.session_value().encode()
            return hmac.new(token, label, hashlib.sha256).hexdigest()
        return None

    def require_manage_form(self, request: Request, sent: str) -> Caller:
        """A page form's change: the CSRF token ``sent`` (for browser sessions), then manage.

        Raises ``ApiError`` 403 ``csrf_failed`` for a missing or wrong token, else as
        ``require_manage`` (which, standalone, also accepts the session for forms).
        """
        expected = self.form_token(request)
        if expected is not None and not (
            sent and hmac.compare_digest(sent.encode(), expected.encode())
        ):
            raise ApiError(403, "csrf_failed", "the form lacks this session's security token")
        if self.hosted:
            checked = request if expected is None else _with_header(request, CSRF_HEADER, expected)
            return _may_manage(self._caller(checked))
        if expected is not None:  # standalone: a signed-in browser with its token
            return _OWNER
        self._require_token(request)
        return _OWNER

    def token_matches(self, candidate: str) -> bool:
        return self._token is not None and hmac.compare_digest(
            candidate.encode(), self._token.encode()
        )

    def require_read(self, request: Request) -> Caller:
        """Anyone the host lets in (a monitor too): their account's sources and Debugger."""
        if self.hosted:
            return self._caller(request)
        return self._standalone(request)

    def require_events(self, request: Request) -> Caller:
        """The Debugger's events (the data sent): callers whose role may see records' data."""
        caller = self.require_read(request)
        if not caller.can_see_events:
            raise ApiError(403, "forbidden", "your role may not see the events' data")
        return caller

    def require_manage(self, request: Request) -> Caller:
        """Changing sources: the host's callers whose role may manage."""
        if self.hosted:
            return _may_manage(self._caller(request))
        return self._standalone(request)

    def require_admin(self, request: Request) -> Caller:
        """Faults: the account's admins."""
        if self._admin_only and self._admin is not None:
            if not self._admin(request):
                raise ApiError(403, "forbidden", "this needs sandbox admin rights")
            return _OWNER
        if self.hosted:
            caller = self._caller(request)
            if not caller.can_admin:
                raise ApiError(403, "forbidden", "this needs sandbox admin rights")
            return caller
        self._require_token(request)
        return _OWNER

    def _caller(self, request: Request) -> Caller:
        caller = self._authorize(request) if self._authorize is not None else None
        if caller is None:
            raise ApiError(403, "forbidden", "you may not manage sandbox sources")
        return caller

    def _standalone(self, request: Request) -> Caller:
        if request.method in _READ_METHODS and self._has_session(request):
            return _OWNER
        self._require_token(request)
        return _OWNER

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


def _may_manage(caller: Caller) -> Caller:
    if not caller.can_manage:
        raise ApiError(403, "forbidden", "your role may read the local Segment but not change it")
    return caller

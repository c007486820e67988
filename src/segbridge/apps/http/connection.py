"""An HTTP connection's settings: the base URL, how segbridge authenticates, extra headers,
the Test connection request and an optional request rate.

Authentication is one of: none, basic (user + password), bearer (token), an API key in a
header or in a query parameter (name + key), OAuth 2 client credentials (token URL, client
id, client secret, scope). Every password, token, key and client secret is a ``Secret``
(stored in the vault, write-only); the plain settings are checked here, all at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from segbridge.apps.base import ConnectionConfig, SettingKind, SettingSpec
from segbridge.core.access import Targets
from segbridge.core.errors import FieldProblem
from segbridge.core.secrets import Secret
from segbridge.exports.errors import ExportError

NONE, BASIC, BEARER, KEY_HEADER, KEY_QUERY, OAUTH = (
    "none", "basic", "bearer", "api_key_header", "api_key_query", "oauth2")
AUTH_CHOICES = (
    (NONE, "None"), (BASIC, "Basic (user and password)"), (BEARER, "Bearer token"),
    (KEY_HEADER, "API key in a header"), (KEY_QUERY, "API key in a query parameter"),
    (OAUTH, "OAuth 2 client credentials"))
TEST_METHODS = ("GET", "HEAD", "POST")
DEFAULT_TEST = "GET /"
BASE_URL = "the API's base URL"
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
KEY_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
VAULT_HELP = "Encrypted with AES-256 and never shown again; re-enter it on every edit."

SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("base_url", "Base URL", SettingKind.URL, required=True,
                help="The API's address; export paths are added to it, e.g. "
                     "https://api.example.com/v2"),
    SettingSpec("auth", "Authentication", SettingKind.CHOICE, default=NONE,
                choices=AUTH_CHOICES, help="How segbridge proves who it is to the API."),
    SettingSpec("username", "User", SettingKind.TEXT, help="Basic authentication's user.",
                max_length=200),
    SettingSpec("password", "Password", SettingKind.SECRET,
                help=f"Basic authentication's password. {VAULT_HELP}", max_length=1000),
    SettingSpec("token", "Bearer token", SettingKind.SECRET,
                help=f"Sent as 'Authorization: Bearer <token>'. {VAULT_HELP}",
                max_length=4000),
    SettingSpec("api_key_name", "API key name", SettingKind.TEXT, max_length=100,
                help="The header (e.g. X-API-Key) or query parameter (e.g. api_key) that "
                     "carries the key."),
    SettingSpec("api_key", "API key", SettingKind.SECRET, help=VAULT_HELP, max_length=4000),
    SettingSpec("token_url", "OAuth token URL", SettingKind.URL,
                help="Where client credentials are exchanged for an access token, e.g. "
                     "https://auth.example.com/oauth/token"),
    SettingSpec("client_id", "OAuth client id", SettingKind.TEXT, max_length=500),
    SettingSpec("client_secret", "OAuth client secret", SettingKind.SECRET,
                help=VAULT_HELP, max_length=4000),
    SettingSpec("scope", "OAuth scope", SettingKind.TEXT, max_length=1000,
                help="Space-separated scopes, if the API asks for any."),
    SettingSpec("headers", "Extra headers", SettingKind.TEXT, advanced=True, max_length=4000,
                help="One 'Name: value' per line, sent with every request (e.g. Accept: "
                     "application/json). Not encrypted: put keys and tokens in the "
                     "authentication settings."),
    SettingSpec("test_request", "Test request", SettingKind.TEXT, advanced=True,
                default=DEFAULT_TEST, max_length=1000,
                help="The request Test connection makes, which must answer 2xx: a method "
                     "and a path, e.g. 'GET /me'."),
)


@dataclass(frozen=True)
class HttpConnection:
    """A connection's settings, parsed and checked (secrets kept as ``Secret``)."""

    base_url: str
    auth: str
    username: str
    headers: tuple[tuple[str, str], ...]
    api_key_name: str
    token_url: str
    client_id: str
    scope: str
    test_method: str
    test_path: str
    requests_per_second: float | None
    secrets: Mapping[str, Secret]

    def secret(self, name: str) -> Secret:
        """A secret the authentication needs; an ExportError saying which when it is empty."""
        value = self.secrets.get(name)
        if value is None or not value.reveal():
            label = next(spec.label for spec in SETTINGS if spec.name == name)
            raise ExportError(f"The connection's authentication needs its {label}, which is "
                              f"empty: edit the connection and enter the {label}.",
                              cause="config")
        return value

    def origin(self) -> tuple[str, str, int]:
        return origin_of(self.base_url)


def connection_problems(values: Mapping[str, str | None]) -> list[FieldProblem]:
    """Every problem of the plain settings, each at its field."""
    problems = [FieldProblem("settings.base_url", reason)
                for reason in _url_problems(values.get("base_url"), BASE_URL)]
    auth = values.get("auth") or NONE
    if auth not in dict(AUTH_CHOICES):
        problems.append(FieldProblem("settings.auth", "choose one of: "
                                     + ", ".join(dict(AUTH_CHOICES))))
    problems += _auth_problems(auth, values)
    problems += [FieldProblem("settings.headers", reason)
                 for reason in header_problems(values.get("headers") or "")]
    if _test_request(values.get("test_request")) is None:
        problems.append(FieldProblem("settings.test_request",
                                     "write a method and a path, e.g. 'GET /' or 'GET /me' "
                                     f"(methods: {', '.join(TEST_METHODS)})"))
    return problems


def _auth_problems(auth: str, values: Mapping[str, str | None]) -> list[FieldProblem]:
    problems = []
    if auth == BASIC and not (values.get("username") or "").strip():
        problems.append(FieldProblem("settings.username", "enter the user for basic "
                                                          "authentication"))
    if auth in (KEY_HEADER, KEY_QUERY) and \
            not KEY_NAME.fullmatch((values.get("api_key_name") or "").strip()):
        where = "header" if auth == KEY_HEADER else "query parameter"
        problems.append(FieldProblem("settings.api_key_name",
                                     f"enter the name of the {where} that carries the key, "
                                     "e.g. " + ("X-API-Key" if auth == KEY_HEADER
                                                else "api_key")))
    if auth == OAUTH:
        problems += [FieldProblem("settings.token_url", reason) for reason in
                     _url_problems(values.get("token_url"), "the OAuth token URL")]
        if not (values.get("client_id") or "").strip():
            problems.append(FieldProblem("settings.client_id", "enter the OAuth client id"))
    return problems


def _url_problems(url: str | None, what: str) -> list[str]:
    text = (url or "").strip()
    if not text:
        return [f"enter {what}, e.g. https://api.example.com"]
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"enter {what} as an http:// or https:// URL, e.g. https://api.example.com"]
    if parts.username or parts.password:
        return ["remove the user and password from the URL; choose basic authentication "
                "and enter them in their own fields"]
    if parts.fragment:
        return ["remove the #fragment from the URL"]
    if parts.query and what == BASE_URL:
        return ["remove the query string from the base URL: put parameters in the export's "
                "query, or an API key in the authentication settings"]
    return []


def header_problems(text: str) -> list[str]:
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not HEADER_NAME.fullmatch(name.strip()):
            problems.append(f"line {number}: write 'Name: value', e.g. Accept: "
                            "application/json")
        elif name.strip().lower() in RESERVED_HEADERS:
            problems.append(f"line {number}: segbridge sets {name.strip()} itself; remove "
                            "the line")
        elif any(ch in value for ch in "\r\n\0"):
            problems.append(f"line {number}: a header value is one line of text")
    return problems


def parse_headers(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip():
            pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def parse_connection(config: ConnectionConfig) -> HttpConnection:
    """The connection's settings, or an ExportError naming every problem and its fix."""
    values = config.values
    problems = connection_problems(values)
    if problems:
        raise ExportError("The HTTP connection's settings are not usable: "
                          + "; ".join(f"{p.field.removeprefix('settings.')}: {p.message}"
                                      for p in problems) + ". Edit the connection.",
                          cause="config")
    method, path = _test_request(values.get("test_request")) or ("GET", "/")
    return HttpConnection(
        base_url=str(values.get("base_url")).strip().rstrip("/"),
        auth=values.get("auth") or NONE,
        username=(values.get("username") or "").strip(),
        headers=parse_headers(values.get("headers") or ""),
        api_key_name=(values.get("api_key_name") or "").strip(),
        token_url=(values.get("token_url") or "").strip(),
        client_id=(values.get("client_id") or "").strip(),
        scope=(values.get("scope") or "").strip(),
        test_method=method, test_path=path,
        requests_per_second=config.requests_per_second,
        secrets=config.secrets)


def connection_targets(values: Mapping[str, str | None]) -> Targets:
    urls = [("settings.base_url", str(values.get("base_url") or "").strip())]
    if (values.get("auth") or NONE) == OAUTH:
        urls.append(("settings.token_url", str(values.get("token_url") or "").strip()))
    return Targets(urls=tuple((field, url) for field, url in urls if url))


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL: where its credentials may be sent."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def _test_request(text: str | None) -> tuple[str, str] | None:
    words = (text or DEFAULT_TEST).split()
    if len(words) == 1 and words[0].startswith("/"):
        words = ["GET", words[0]]
    if len(words) != 2 or words[0].upper() not in TEST_METHODS or not words[1].startswith("/"):
        return None
    return words[0].upper(), words[1]

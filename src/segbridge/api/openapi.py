"""The API contract: FastAPI's OpenAPI document, completed with what the routes cannot say.

For every operation, from the route itself (so new routes are covered without edits):
- security: ``bearerAuth`` (``Authorization: Bearer <API token>``) or ``cookieAuth`` (the
  browser session cookie, with ``csrfToken`` for unsafe methods); ``security: []`` where
  the route does not ask for the caller (sign-in);
- the error statuses it can answer, each with the one error body (``ErrorResponse``):
  400 a body that is not JSON, 401/403 for authenticated operations, 404 where the path
  names something, 413 for raw uploads, 422 where there is input to validate; 409 only
  on methods that change something (a route's router may declare it wholesale);
- ``application`` fields of request bodies list the applications this server has, and the
  ``settings`` beside them take that application's settings (its names only, its required
  ones present).

The docs page (``/api/docs``) is Swagger UI served from this server's own files (vendored,
pinned: ``SWAGGER_UI_VERSION``), so it works offline; its start-up is a static script, not
an inline one, under the same security headers as the other pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from segbridge.accounts.sessions import CSRF_HEADER, SESSION_COOKIE
from segbridge.api.deps import SAFE_METHODS, current_principal
from segbridge.api.schemas import ErrorResponse
from segbridge.apps.base import Application, SettingSpec

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {
        "type": "http", "scheme": "bearer",
        "description": "An API token: `segbridge tokens create` or POST /api/v1/tokens."},
    "cookieAuth": {
        "type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
        "description": "The browser session, set by POST /api/v1/auth/login or a login link."},
    "csrfToken": {
        "type": "apiKey", "in": "header", "name": CSRF_HEADER,
        "description": "With the session cookie, on every method but GET/HEAD/OPTIONS: "
                       "the csrf_token answered by POST /api/v1/auth/login."},
}
Security = list[dict[str, list[str]]]
SAFE_SECURITY: Security = [{"bearerAuth": []}, {"cookieAuth": []}]
UNSAFE_SECURITY: Security = [{"bearerAuth": []}, {"cookieAuth": [], "csrfToken": []}]
DESCRIPTIONS = {
    400: "The body is not JSON: unparseable, or not sent as application/json.",
    401: "Not signed in: no valid API token or session (revoked, expired, or its user "
         "disabled).",
    403: "Not allowed: the caller's role may not do this, a path or address outside what "
         "the operator allows, or a browser session without a valid X-CSRF-Token header.",
    404: "No such object in the caller's account.",
    413: "The body is larger than the server allows (SEGBRIDGE_MAX_UPLOAD_MB).",
    422: "The input is well-formed but wrong (also: text with a NUL character); every "
         "problem is listed in error.details.",
}
HEADERS = {
    401: {"WWW-Authenticate": {"description": "Bearer", "required": True,
                               "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds to wait before trying again",
                          "required": True, "schema": {"type": "string"}}},
}
UNUSED_COMPONENTS = ("HTTPValidationError", "ValidationError", "Json")  # Json: a flow body

DOCS_PATH = "/api/docs"
DOCS_SCRIPT_PATH = f"{DOCS_PATH}/init.js"
SWAGGER_UI_VERSION = "5.35.0"  # npm swagger-ui-dist, in web/static/vendor/swagger-ui-<version>
SWAGGER_UI_ASSETS = f"/static/vendor/swagger-ui-{SWAGGER_UI_VERSION}"
# The pages' policy (web.rendering), but images may also be data: URIs (Swagger UI's CSS
# draws its icons so); still no CDN, no inline script or style, no eval.
DOCS_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>API · segbridge</title>
  <link rel="icon" href="/static/icons/logo.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{SWAGGER_UI_ASSETS}/swagger-ui.css">
</head>
<body>
  <main id="swagger-ui" data-openapi-url="{{openapi_url}}">
    <noscript>The API documentation needs JavaScript. The OpenAPI document itself is at
      <a href="{{openapi_url}}">{{openapi_url}}</a>.</noscript>
  </main>
  <script src="{SWAGGER_UI_ASSETS}/swagger-ui-bundle.js"></script>
  <script src="{DOCS_SCRIPT_PATH}?v={SWAGGER_UI_VERSION}"></script>
</body>
</html>
"""
DOCS_SCRIPT = """"use strict";
(function () {
  var host = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: host.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    deepLinking: true,
    validatorUrl: null,
    showExtensions: true,
    showCommonExtensions: true
  });
})();
"""


def install_contract(app: FastAPI, applications: Callable[[], list[Application]]) -> None:
    """Make ``app.openapi()`` answer the completed document (built once, then cached)."""
    fastapi_openapi = app.openapi

    completed: list[int] = []  # FastAPI builds the document anew when routes change

    def contract_openapi() -> dict[str, Any]:
        spec = fastapi_openapi()
        if id(spec) not in completed:
            complete_contract(spec, app, applications())
            completed[:] = [id(spec)]
        return spec

    app.openapi = contract_openapi  # type: ignore[method-assign]


def install_docs_page(app: FastAPI) -> None:
    """``/api/docs``: Swagger UI from this server's own files (create the app with
    ``docs_url=None``: FastAPI's page loads Swagger UI from a CDN with an inline script)."""
    openapi_url = app.openapi_url or ""
    page = DOCS_PAGE.replace("{openapi_url}", openapi_url)

    def docs_page() -> HTMLResponse:
        return HTMLResponse(page, headers=DOCS_SECURITY_HEADERS)

    def docs_script() -> Response:
        return Response(DOCS_SCRIPT, media_type="text/javascript; charset=utf-8",
                        headers={**DOCS_SECURITY_HEADERS, "Cache-Control": "no-cache"})

    app.add_api_route(DOCS_PATH, docs_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(DOCS_SCRIPT_PATH, docs_script, methods=["GET"], include_in_schema=False)


def complete_contract(spec: dict[str, Any], app: FastAPI,
                      applications: list[Application]) -> None:
    components = spec.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    spec["security"] = SAFE_SECURITY
    for route, method, operation in _operations(spec, app):
        _complete_operation(route, method, operation)
    schemas = components.setdefault("schemas", {})
    schemas.update(_error_schemas())
    for name in UNUSED_COMPONENTS:
        schemas.pop(name, None)
    _list_applications(spec, schemas, applications)


def _operations(spec: dict[str, Any], app: FastAPI
                ) -> Iterator[tuple[RouteContext, str, dict[str, Any]]]:
    """Each documented operation with its route (as included, with its prefix)."""
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        path = spec["paths"].get(route.path_format, {})
        for method in sorted(route.methods or ()):
            if method.lower() in path:
                yield route, method, path[method.lower()]


def _complete_operation(route: RouteContext, method: str, operation: dict[str, Any]) -> None:
    authenticated = _asks_for_caller(route.dependant)
    unsafe = method not in SAFE_METHODS
    if authenticated:
        operation["security"] = UNSAFE_SECURITY if unsafe else SAFE_SECURITY
    else:
        operation["security"] = []
    responses: dict[str, Any] = operation.setdefault("responses", {})
    body = operation.get("requestBody", {}).get("content", {})
    has_json_body = route.body_field is not None
    has_input = has_json_body or bool(body) or bool(operation.get("parameters"))
    applies = {  # None: as the route says (e.g. 401 for a wrong password at sign-in)
        400: has_json_body,
        401: authenticated or None,
        403: (authenticated and unsafe) or None,
        404: bool(route.dependant.path_params),
        413: "application/octet-stream" in body or None,
        422: has_input,
    }
    for code, answer in applies.items():
        if answer:
            responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
        elif answer is not None:  # a router's wholesale declaration that cannot happen here
            responses.pop(str(code), None)
    if not unsafe:
        responses.pop("409", None)
    for status, response in responses.items():
        if status.isdigit():
            _describe_error(int(status), response)


def _describe_error(code: int, response: dict[str, Any]) -> None:
    if code < 400:
        return
    if response.get("description") in (None, "", "Validation Error"):
        response["description"] = DESCRIPTIONS.get(code, "An error.")
    response["content"] = {"application/json": {"schema": ERROR_REF}}
    if code in HEADERS:
        response["headers"] = HEADERS[code]


def _error_schemas() -> dict[str, Any]:
    schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    return {**defs, "ErrorResponse": schema}


def _asks_for_caller(dependant: Dependant) -> bool:
    if dependant.call is current_principal:
        return True
    return any(_asks_for_caller(sub) for sub in dependant.dependencies)


def _list_applications(spec: dict[str, Any], schemas: dict[str, Any],
                       applications: list[Application]) -> None:
    """An ``application`` field of a request body takes one of this server's applications;
    ``settings`` beside it, that application's settings."""
    keys = sorted(application.key for application in applications)
    for name in _request_schema_names(spec):
        schema = schemas.get(name, {})
        properties = schema.get("properties", {})
        field = properties.get("application")
        if field is None:
            continue
        for option in field.get("anyOf", [field]):
            if option.get("type") == "string":
                option["enum"] = keys
        if "settings" in properties:
            schema["anyOf"] = [_settings_branch(application, fixed="application" in
                                                schema.get("required", []))
                               for application in applications]


def _settings_branch(application: Application, *, fixed: bool) -> dict[str, Any]:
    """The settings one application takes (unknown names and missing required ones are
    refused; values are checked by the service: trimmed, choices, lengths)."""
    settings = {
        "type": "object", "additionalProperties": False,
        "properties": {spec.name: {"anyOf": [{"type": "string"}, {"type": "null"}],
                                   "description": _setting_description(spec)}
                       for spec in application.settings},
        "required": [spec.name for spec in application.settings if spec.required],
    }
    branch: dict[str, Any] = {"properties": {"settings": settings}}
    if fixed:  # the body names its application: the settings are that one's
        branch["properties"]["application"] = {"const": application.key}
    return branch


def _setting_description(spec: SettingSpec) -> str:
    choices = f" (one of: {', '.join(value for value, _ in spec.choices)})" if spec.choices else ""
    secret = "; write-only" if spec.secret else ""
    return f"{spec.label}{choices}{secret}"


def _request_schema_names(spec: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for path in spec["paths"].values():
        for operation in path.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                ref = media.get("schema", {}).get("$ref", "")
                if ref.startswith("#/components/schemas/"):
                    names.add(ref.rsplit("/", 1)[1])
    return names

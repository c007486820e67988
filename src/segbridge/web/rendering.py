"""Rendering pages: Jinja2 with autoescaping, security headers, htmx partial responses.

Every page carries a Content-Security-Policy that allows scripts and styles only from this
server's own files: no inline script, no inline event handler, no inline style.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from segbridge.runs.lifecycle import ACTIVE
from segbridge.web import forms
from segbridge.web.auth import can

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Vary": "HX-Request, HX-Target",
}
SCRUBBED = "[hidden]"


@cache
def static_url(path: str) -> str:
    """The URL of a static file, with a content hash so browsers never use a stale copy."""
    digest = hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest()[:10]
    return f"{STATIC_PREFIX}/{path}?v={digest}"


def _sentence(text: str) -> str:
    """A service message ("enter a name") as a sentence ("Enter a name.")."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?)" else text + "."


def pretty_json(value: object) -> str:
    """JSON as a user reads it: keys in their own order, text as written (escaped by the
    template like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(can=can, static=static_url, field_id=forms.field_id, error_id=forms.error_id,
                       help_id=forms.help_id, setting_field=forms.setting_field,
                       active_run_statuses=ACTIVE, pretty_json=pretty_json)
    env.filters["sentence"] = _sentence
    return env


_ENV = _environment()


def is_htmx(request: Request) -> bool:
    """A partial request from htmx (a history restore wants the whole page)."""
    return (request.headers.get("HX-Request") == "true"
            and request.headers.get("HX-History-Restore-Request") != "true")


def htmx_target(request: Request) -> str | None:
    return request.headers.get("HX-Target") if is_htmx(request) else None


def render_text(template: str, *, secrets: Iterable[str] = (), **context: Any) -> str:
    """A template as text, with any secret the request carried scrubbed (defence in depth)."""
    html = _ENV.get_template(template).render(**context)
    return scrub(html, secrets)


def scrub(html: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4 and secret in html:
            log.error("a secret reached a rendered page and was removed; this is a bug")
            html = html.replace(secret, SCRUBBED)
    return html


def html_response(
    html: str, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    return HTMLResponse(html, status, headers={**SECURITY_HEADERS, **(headers or {})})


def render(
    template: str, *, status: int = 200, headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (), **context: Any,
) -> HTMLResponse:
    return html_response(render_text(template, secrets=secrets, **context), status=status,
                         headers=headers)

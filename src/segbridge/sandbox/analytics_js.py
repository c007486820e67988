"""analytics.js, served as Segment's CDN serves it, so a web page can use the standard snippet.

The build is @segment/analytics-next's standalone (snippet) build, vendored from the npm
registry with its version and licence in ``static/vendor/analytics-next`` (refreshed by
``scripts/vendor-analytics-js``). Segment's CDN paths:

* ``/analytics.js/v1/<write key>/analytics.min.js``: the library (the same file for every
  key, as the key's settings come from ``/v1/projects/<key>/settings``);
* ``/analytics-next/bundles/<name>``: the parts the library loads on demand.

The library finds its CDN from its own ``<script src>`` when that is ``https://``; on a
plain-HTTP receiver the page sets ``analytics._cdn`` to the receiver's address (the snippet's
documented way to self-host), as the Try it page does.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from segbridge.sandbox.wire import CORS_HEADERS

VENDOR = Path(__file__).parent / "static" / "vendor" / "analytics-next"
LIBRARY = VENDOR / "analytics.min.js"
BUNDLES = VENDOR / "bundles"
_BUNDLE_NAME = re.compile(r"[A-Za-z0-9_-]+\.bundle\.[0-9a-f]+\.js")
_HEADERS = {
    "Cache-Control": "public, max-age=300",
    "X-Content-Type-Options": "nosniff",
    **{name.decode(): value.decode() for name, value in CORS_HEADERS},
}
_JAVASCRIPT = "text/javascript; charset=utf-8"


@cache
def _file(path: Path) -> bytes:
    return path.read_bytes()


def library_version() -> str:
    """The vendored analytics-next version (from ``VERSION``)."""
    for line in (VENDOR / "VERSION").read_text().splitlines():
        if line.startswith("version="):
            return line.removeprefix("version=")
    return "unknown"


async def library(request: Request) -> Response:
    return Response(_file(LIBRARY), media_type=_JAVASCRIPT, headers=_HEADERS)


async def bundle(request: Request) -> Response:
    name = request.path_params["name"]
    path = BUNDLES / name
    if not _BUNDLE_NAME.fullmatch(name) or not path.is_file():
        return PlainTextResponse("No such analytics.js bundle.", 404)
    return Response(_file(path), media_type=_JAVASCRIPT, headers=_HEADERS)


def routes() -> list[Route]:
    return [
        Route("/analytics.js/v1/{write_key}/analytics.min.js", library, methods=["GET"]),
        Route("/analytics-next/bundles/{name}", bundle, methods=["GET"]),
    ]

"""The API docs page (/api/docs) works offline: Swagger UI is served from this server's own,
pinned files, with no CDN, no inline script, and the pages' security headers."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

from tests.integration.conftest import Server

EXPECTED_TYPES = {"stylesheet": "text/css", "icon": "image/svg+xml",
                  "script": "text/javascript"}


class Assets(HTMLParser):
    """The page's scripts, stylesheets and icons, and whether any script is inline."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []  # (kind, url)
        self.inline_scripts = 0
        self.style_attributes = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if "style" in values or any(name.startswith("on") for name in values):
            self.style_attributes += 1
        if tag == "script":
            self._in_script = True
            if values.get("src"):
                self.found.append(("script", values["src"] or ""))
        elif tag == "link" and values.get("rel") in ("stylesheet", "icon"):
            self.found.append((values["rel"] or "", values.get("href") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def test_the_docs_page_references_only_this_servers_files(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as client:
        page = client.get("/api/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "style-src 'self';" in csp
        assert "unsafe" not in csp and "http" not in csp and "cdn" not in csp.lower()
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assets = Assets()
        assets.feed(page.text)
        assert assets.inline_scripts == 0 and assets.style_attributes == 0
        kinds = {kind for kind, _ in assets.found}
        assert kinds == {"stylesheet", "script", "icon"}
        assert len([url for kind, url in assets.found if kind == "script"]) == 2
        for kind, url in assets.found:
            assert url.startswith("/") and not url.startswith("//"), url  # same origin
            answer = client.get(url)
            assert answer.status_code == 200, url
            assert answer.headers["content-type"].startswith(EXPECTED_TYPES[kind]), url
        assert re.search(r"/static/vendor/swagger-ui-\d+\.\d+\.\d+/swagger-ui-bundle\.js",
                         page.text)
        assert 'data-openapi-url="/api/v1/openapi.json"' in page.text
        assert client.get("/api/v1/openapi.json").status_code == 200


def test_the_vendored_swagger_ui_carries_its_licence(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as client:
        page = client.get("/api/docs").text
        folder = re.search(r"/static/vendor/swagger-ui-[0-9.]+/", page)
        assert folder is not None
        for name in ("LICENSE", "NOTICE", "SOURCE.txt"):
            assert client.get(folder.group(0) + name).status_code == 200, name
        assert "Apache License" in client.get(folder.group(0) + "LICENSE").text

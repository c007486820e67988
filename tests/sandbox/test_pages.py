"""The server-rendered pages: sources with their write keys, and each source's Debugger."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from .conftest import ADMIN_TOKEN, Sandbox, SandboxFactory, basic

pytestmark = pytest.mark.integration

EVIL = '<script>alert("x")</script>'


def _no_inline_script(html: str) -> None:
    for tag in re.findall(r"<script[^>]*>.*?</script>", html, flags=re.S):
        assert re.fullmatch(r'<script src="[^"]+\.js" defer></script>', tag), tag


def test_sources_page_lists_write_keys_with_a_copy_button(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    response = sandbox.admin.get("/sources")
    assert response.status_code == 200
    html = response.text
    assert source["name"] in html
    assert f'value="{source["write_key"]}"' in html
    assert f'<label for="key-{source["id"]}">Write key</label>' in html
    assert 'class="button small copy"' in html
    assert "Settings &gt; API keys" in html
    assert f'href="/sources/{source["id"]}/debugger"' in html
    _no_inline_script(html)
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_a_script_in_a_source_name_is_escaped(sandbox: Sandbox) -> None:
    source = sandbox.new_source(EVIL)
    for path in ("/sources", f"/sources/{source['id']}/debugger"):
        html = sandbox.admin.get(path).text
        assert EVIL not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
        _no_inline_script(html)


def test_debugger_page_wires_the_live_list(sandbox: Sandbox, source: dict[str, Any]) -> None:
    response = sandbox.admin.get(f"/sources/{source['id']}/debugger")
    assert response.status_code == 200
    html = response.text
    assert f'data-stream-url="/api/sources/{source["id"]}/events/stream"' in html
    assert f'data-events-url="/api/sources/{source["id"]}/events"' in html
    for control in (
        'id="live-toggle"',
        'id="search"',
        'for="search"',
        'id="view-pretty"',
        'id="view-raw"',
    ):
        assert control in html
    assert '<script src="/static/debugger.js" defer></script>' in html
    _no_inline_script(html)


def test_static_files_are_served(sandbox: Sandbox) -> None:
    for name, kind in (
        ("debugger.js", "javascript"),
        ("sources.js", "javascript"),
        ("sandbox.css", "css"),
        ("favicon.svg", "image/svg+xml"),
    ):
        response = sandbox.http.get(f"/static/{name}")
        assert response.status_code == 200
        assert kind in response.headers["content-type"]
    script = sandbox.http.get("/static/debugger.js").text
    assert "EventSource" in script
    assert "innerHTML" not in script  # everything is written with textContent


def test_unknown_source_page_is_404(sandbox: Sandbox) -> None:
    response = sandbox.admin.get("/sources/src_nope/debugger")
    assert response.status_code == 404
    assert "No such source" in response.text


def test_a_browser_signs_in_with_the_token(sandbox: Sandbox, source: dict[str, Any]) -> None:
    with httpx.Client(base_url=sandbox.url) as browser:
        first = browser.get("/sources")
        assert first.status_code == 303
        assert first.headers["location"] == "/login"
        form = browser.get("/login")
        assert '<label for="token">Admin token</label>' in form.text
        wrong = browser.post("/login", data={"token": "wrong"})
        assert wrong.status_code == 401
        assert "Wrong admin token." in wrong.text
        right = browser.post("/login", data={"token": ADMIN_TOKEN})
        assert right.status_code == 303
        cookie = right.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert ADMIN_TOKEN not in right.headers["set-cookie"]
        assert source["write_key"] in browser.get("/sources").text
        assert browser.get(f"/api/sources/{source['id']}/events").status_code == 200


def test_pages_use_the_manage_check(make_sandbox: SandboxFactory) -> None:
    closed = make_sandbox(admin_token=None, authorize_manage=lambda r: False)
    response = closed.http.get("/sources")
    assert response.status_code == 403
    assert "Not allowed" in response.text


def test_debugger_page_passes_q_to_the_script(sandbox: Sandbox, source: dict[str, Any]) -> None:
    calls = [
        {"type": "track", "userId": "u", "event": "E", "messageId": mid}
        for mid in ("q-test-a", "q-test-b", "q-test-c")
    ]
    sandbox.http.post("/v1/batch", json={"batch": calls}, headers=basic(source["write_key"]))
    page = sandbox.admin.get(f"/sources/{source['id']}/debugger", params={"q": " Q-TEST-B "})
    html = page.text
    assert 'data-query="Q-TEST-B"' in html  # trimmed, for the script
    assert 'value="Q-TEST-B">' in html  # and in the search box, also without script
    events_url = re.search(r'data-events-url="([^"]+)"', html)
    assert events_url is not None
    found = sandbox.admin.get(events_url.group(1), params={"q": "Q-TEST-B"}).json()["events"]
    assert [e["message_id"] for e in found] == ["q-test-b"]
    script = sandbox.http.get("/static/debugger.js").text
    assert "root.dataset.query" in script
    assert 'searchParams.set("q"' in script  # the search is kept in the address

    plain = sandbox.admin.get(f"/sources/{source['id']}/debugger").text
    assert 'data-query=""' in plain


def test_q_is_escaped_on_the_debugger_page(sandbox: Sandbox, source: dict[str, Any]) -> None:
    evil = '"><script>alert(1)</script>'
    html = sandbox.admin.get(f"/sources/{source['id']}/debugger", params={"q": evil}).text
    assert evil not in html
    assert 'data-query="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    _no_inline_script(html)


def test_standalone_pages_have_no_way_back_to_segbridge(sandbox: Sandbox) -> None:
    assert "← segbridge" not in sandbox.admin.get("/sources").text


def test_standalone_pages_have_their_icon(sandbox: Sandbox) -> None:
    html = sandbox.admin.get("/sources").text
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
    assert '<body class="sandbox-standalone">' in html


def test_a_host_sets_the_pages_in_its_own_layout(make_sandbox: SandboxFactory) -> None:
    """``layout`` gets each page in pieces (title, main content, stylesheets, scripts,
    status) and answers for it: the host's own page around the receiver's content."""
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response

    from segbridge.sandbox import HostedPage

    seen: list[HostedPage] = []

    def layout(request: Request, page: HostedPage) -> Response:
        seen.append(page)
        return HTMLResponse(f"<title>{page.title}</title><main>{page.main}</main>",
                            page.status, headers={"X-Host": "yes"})

    sandbox = make_sandbox(layout=layout)
    source = sandbox.admin.post("/api/sources", json={"name": "Hosted <b>"}).json()
    page = sandbox.admin.get(f"/sources/{source['id']}/debugger")
    missing = sandbox.admin.get("/sources/src_nope/debugger")

    assert page.status_code == 200 and page.headers["x-host"] == "yes"
    assert page.text.startswith("<title>Debugger: Hosted &lt;b&gt;</title><main>")
    assert 'id="event-detail"' in page.text and "<html" not in page.text
    assert seen[0].stylesheets == ("/static/sandbox.css",)
    assert seen[0].scripts == ("/static/debugger.js",)
    assert "<b>" not in seen[0].main  # the content is escaped as it is rendered
    assert missing.status_code == 404 and seen[1].title == "No such source"

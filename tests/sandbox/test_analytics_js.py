"""analytics.js against the local Segment: the vendored library and its settings over HTTP, and
Segment's own browser library in Debian's Chromium (through Playwright) delivering every call.

The page of the browser test lives on another origin (as a user's app does) and uses
Segment's standard snippet with the library's address changed and ``analytics._cdn`` set.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.sync_api import Page, Request, expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from segbridge.sandbox.analytics_js import LIBRARY, library_version
from tests.support.servers import serve_in_thread

from .conftest import ADMIN_TOKEN, Sandbox, SandboxFactory, basic
from .test_browser import chromium_page, sign_in

__all__ = ["chromium_page"]  # the fixture, shared with the other browser tests

VERSION = library_version()
CALLS = ("identify", "track", "page", "group", "alias")

# Segment's standard snippet (5.2.1) with the library's address and ``_cdn`` changed
SNIPPET_PAGE = (Path(__file__).parent / "snippet_page.html").read_text()


@pytest.fixture
def archived(make_sandbox: SandboxFactory, tmp_path: Path) -> tuple[Sandbox, Path]:
    archive = tmp_path / "archive.ndjson"
    return make_sandbox(archive_path=archive), archive


@pytest.fixture
def shop(archived: tuple[Sandbox, Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A web page on another origin using the snippet, with a new source's write key."""
    sandbox, _ = archived
    source = sandbox.new_source("Shop front")
    html = SNIPPET_PAGE.replace("__CDN__", sandbox.url).replace("__KEY__", source["write_key"])

    async def front(request: Any) -> HTMLResponse:
        return HTMLResponse(html)

    with serve_in_thread(Starlette(routes=[Route("/", front)])) as url:
        yield url, source


def test_the_library_is_served_at_segments_cdn_path(sandbox: Sandbox) -> None:
    response = sandbox.http.get("/analytics.js/v1/anyWriteKey1234/analytics.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.content == LIBRARY.read_bytes()
    assert f"next-{VERSION}".encode() in response.content or VERSION.encode() in response.content
    bundles = sorted(p.name for p in (LIBRARY.parent / "bundles").iterdir())
    assert sandbox.http.get(f"/analytics-next/bundles/{bundles[0]}").status_code == 200
    assert sandbox.http.get("/analytics-next/bundles/..%2FVERSION").status_code == 404
    assert sandbox.http.get("/analytics-next/bundles/nothing.bundle.00.js").status_code == 404


def test_the_vendored_build_names_its_version_and_licence() -> None:
    folder = LIBRARY.parent
    assert "MIT License" in (folder / "LICENSE.MD").read_text()
    fields = dict(line.split("=", 1) for line in (folder / "VERSION").read_text().splitlines())
    assert fields["package"] == "@segment/analytics-next"
    assert fields["version"] == VERSION
    assert fields["integrity"].startswith("sha512-")


def test_settings_point_analytics_js_back_at_this_receiver(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    key = source["write_key"]
    for path in (f"/v1/projects/{key}/settings", f"/v1/projects/{key}/settings/"):
        response = sandbox.http.get(path)
        assert response.status_code == 200, path
        assert response.headers["access-control-allow-origin"] == "*"
        settings = response.json()
        host = sandbox.url.removeprefix("http://")
        assert settings["integrations"]["Segment.io"] == {
            "apiKey": key, "apiHost": f"{host}/v1", "protocol": "http",
        }
        assert settings["metrics"]["sampleRate"] == 0, "the library reports nothing to Segment"


@pytest.mark.parametrize(("short", "call_type"), [
    ("t", "track"), ("p", "page"), ("i", "identify"), ("g", "group"), ("a", "alias"),
    ("s", "screen"),
])
def test_the_short_paths_take_text_plain_bodies(
    sandbox: Sandbox, source: dict[str, Any], short: str, call_type: str
) -> None:
    call = {"userId": "u", "event": "E", "name": "N", "groupId": "g", "previousId": "p",
            "writeKey": source["write_key"], "messageId": f"short-{short}"}
    response = sandbox.http.post(f"/v1/{short}", content=orjson.dumps(call),
                                 headers={"Content-Type": "text/plain"})
    assert (response.status_code, response.json()) == (200, {"success": True})
    [event] = sandbox.events(source["id"], q=f"short-{short}")
    assert event["type"] == call_type
    assert "writeKey" not in event["raw"]


def test_the_short_batch_path_and_trailing_slashes(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    batch = {"batch": [{"type": "track", "userId": "u", "event": "Batched"}],
             "writeKey": source["write_key"]}
    for path in ("/v1/b", "/v1/batch/", "/v1/track/"):
        one = {**batch["batch"][0], "writeKey": source["write_key"]}
        body = batch if path != "/v1/track/" else one
        response = sandbox.http.post(path, content=orjson.dumps(body),
                                     headers={"Content-Type": "text/plain"})
        assert (response.status_code, response.json()) == (200, {"success": True}), path
    assert len(sandbox.events(source["id"])) == 3
    assert sandbox.http.post("/v1/m", headers=basic(source["write_key"]), json={}).status_code \
        == 404


def _wait_for(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_analytics_js_in_chromium_delivers_every_call_once(
    chromium_page: Page, archived: tuple[Sandbox, Path], shop: tuple[str, dict[str, Any]]
) -> None:
    page = chromium_page
    sandbox, archive = archived
    url, source = shop
    posts: list[Request] = []
    seen: list[str] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    page.on("request", lambda r: seen.append(r.url))
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.evaluate("""async () => {
        await analytics.identify("user-7", {email: "seven@example.com"});
        await analytics.track("Order Completed", {revenue: 12.5});
        await analytics.page("Shop", "Front");
        await analytics.group("acme", {name: "Acme"});
        await analytics.alias("user-7-new");
    }""")
    _wait_for(lambda: len(sandbox.events(source["id"])) >= 5)
    time.sleep(0.3)  # nothing more arrives (no retry, no duplicate)

    assert sorted(p.url.rsplit("/", 1)[1] for p in posts) == sorted(["i", "t", "p", "g", "a"])
    strays = [u for u in seen if not u.startswith((url, sandbox.url))]
    assert not strays, "nothing goes to Segment's CDN or API"
    assert {p.headers["content-type"] for p in posts} == {"text/plain"}
    events = {e["type"]: e["raw"] for e in sandbox.events(source["id"])}
    assert sorted(events) == sorted(CALLS)
    assert len(sandbox.events(source["id"])) == 5
    for call_type, raw in events.items():
        library = raw["context"]["library"]
        assert library == {"name": "analytics.js", "version": f"next-{VERSION}"}, call_type
        assert raw["context"]["page"]["url"] == f"{url}/", call_type
        assert raw["context"]["page"]["title"] == "Shop front", call_type
        assert raw["anonymousId"], call_type
    assert events["track"]["event"] == "Order Completed"
    assert events["page"]["name"] == "Front" and events["page"]["category"] == "Shop"
    # analytics-next stamps the identified user's id over an alias's userId (its own
    # addIdentity); the receiver keeps what the library sent
    assert events["alias"]["previousId"] == "user-7"
    assert events["group"]["groupId"] == "acme"
    lines = [orjson.loads(line) for line in archive.read_bytes().splitlines()]
    assert sorted(line["type"] for line in lines) == sorted(CALLS)
    assert {line["messageId"] for line in lines} == {e["messageId"] for e in events.values()}
    assert sandbox.stats(source["id"])["dropped"] == 0


def test_try_it_sends_from_buttons_and_the_debugger_shows_them(
    chromium_page: Page, make_sandbox: SandboxFactory
) -> None:
    page = chromium_page
    sandbox = make_sandbox()
    source = sandbox.new_source("Try it source")
    sign_in(page, sandbox)
    page.get_by_role("link", name="Try it with analytics.js").last.click()
    expect(page.get_by_role("heading", name="Try it: Try it source")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("analytics.js is ready.")
    for name in ("Identify", "Track", "Page"):
        page.get_by_role("button", name=name, exact=True).click()
    _wait_for(lambda: len(sandbox.events(source["id"])) == 3)

    page.get_by_role("link", name="Debugger").click()
    events = page.locator("#event-list > li")
    expect(events).to_have_count(3)
    page.get_by_label("Type").select_option("track")
    expect(events).to_have_count(1)
    expect(events.first).to_contain_text("Try It Clicked")
    page.get_by_label("Type").select_option("")
    page.get_by_label("Event name").fill("no such event")
    expect(events.first).to_contain_text("No event matches")

    bad = {"batch": [{"type": "track", "userId": {"an": "object"}, "event": "E"}]}
    assert sandbox.http.post("/v1/batch", json=bad,
                             headers=basic(source["write_key"])).status_code == 200
    drops = page.locator("#drop-list > li")
    expect(drops.first).to_contain_text("batch[0].userId must be a string", timeout=8_000)
    expect(drops.first).to_contain_text("invalid_field")


def test_try_it_needs_a_reader(sandbox: Sandbox, source: dict[str, Any]) -> None:
    anonymous = httpx.get(f"{sandbox.url}/sources/{source['id']}/try", follow_redirects=False)
    assert anonymous.status_code in (303, 401, 403)
    assert source["write_key"] not in anonymous.text
    signed = sandbox.admin.get(f"/sources/{source['id']}/try")
    assert signed.status_code == 200
    assert source["write_key"] in signed.text
    assert ADMIN_TOKEN not in signed.text

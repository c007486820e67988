"""The Create connection pane through a browser session: created in place (``return_to``),
an unknown write key against this server's Local Segment, Segment's own answers (a loopback
server stands in for api.segment.io and cdn.segment.com), and the real Local Segment address
in help and errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from segbridge.apps.segment import app as segment_app
from tests.integration.conftest import Server
from tests.integration.test_account_page import browser
from tests.support.receivers import Answers, status_receiver

NEW = "/connections/new/segment"
HTMX_PANE = {"HX-Request": "true", "HX-Target": "pane-host"}
UNKNOWN_KEY = "unknownunknownunknownunknown1234"


def save(client: httpx.Client, write_key: str, *, name: str = "Segment - shop",
         endpoint: str = "", htmx: bool = False, path: str = NEW,
         **fields: str) -> httpx.Response:
    data = {"csrf_token": client.headers["X-Test-Csrf"], "name": name,
            "settings.write_key": write_key, "settings.region": "us",
            "settings.endpoint": endpoint, "then": "stay", **fields}
    headers = {**HTMX_PANE, "X-CSRF-Token": client.headers["X-Test-Csrf"]} if htmx else {}
    return client.post(path, data=data, headers=headers)


def test(client: httpx.Client, write_key: str, endpoint: str = "") -> httpx.Response:
    headers = {"HX-Request": "true", "HX-Target": "connection-form",
               "X-CSRF-Token": client.headers["X-Test-Csrf"]}
    return client.post(NEW + "/test", headers=headers, data={
        "csrf_token": client.headers["X-Test-Csrf"], "name": "Segment - shop",
        "settings.write_key": write_key, "settings.region": "us",
        "settings.endpoint": endpoint})


test.__test__ = False  # type: ignore[attr-defined]


def hidden_return_to(html: str) -> str | None:
    match = re.search(r'<input type="hidden" name="return_to" value="([^"]*)">', html)
    return match.group(1) if match else None


def close_url(html: str) -> str:
    match = re.search(r'data-close-url="([^"]*)"', html)
    assert match is not None
    return match.group(1)


# ---- return_to -------------------------------------------------------------------------------

def test_a_local_return_to_is_kept_in_the_form_and_is_where_close_goes(server: Server) -> None:
    with browser(server) as me:
        page = me.get(NEW, params={"return_to": "/flows/flo_1?step=source"})
    assert page.status_code == 200
    assert hidden_return_to(page.text) == "/flows/flo_1?step=source"
    assert close_url(page.text) == "/flows/flo_1?step=source"
    assert 'href="/flows/flo_1?step=source" data-pane-close' in page.text


@pytest.mark.parametrize("target", [
    "//evil.com", "https://x", "/\\evil", "http://127.0.0.1/flows", "flows/1", "/a\tb",
    "/a\x01b", "javascript:alert(1)", "/flows#x",
])
def test_return_to_is_ignored_unless_it_is_a_path_here(server: Server, source: dict[str, Any],
                                                       target: str) -> None:
    with browser(server) as me:
        page = me.get(NEW, params={"return_to": target})
        chooser = me.get("/connections/new", params={"return_to": target})
        saved = save(me, source["write_key"], endpoint=server.sandbox_url, return_to=target)
    assert page.status_code == 200
    assert hidden_return_to(page.text) is None
    assert close_url(page.text) == "/connections"
    assert "return_to" not in chooser.text
    assert saved.status_code == 303
    assert saved.headers["location"].startswith("/connections")


def test_the_application_list_keeps_return_to_in_its_links(server: Server) -> None:
    with browser(server) as me:
        page = me.get("/connections/new", params={"return_to": "/flows/flo_1"}, headers=HTMX_PANE)
        found = me.get("/connections/new", params={"return_to": "/flows/flo_1", "q": "seg"},
                       headers={"HX-Request": "true", "HX-Target": "app-results"})
    assert page.status_code == 200 and "<html" not in page.text  # the pane alone
    assert 'href="/connections/new/segment?return_to=%2Fflows%2Fflo_1"' in page.text
    assert hidden_return_to(page.text) == "/flows/flo_1"  # the search keeps it too
    assert close_url(page.text) == "/flows/flo_1"
    assert 'href="/connections/new/segment?return_to=%2Fflows%2Fflo_1"' in found.text


def test_the_pane_alone_brings_its_discard_dialog(server: Server) -> None:
    with browser(server) as me:
        pane = me.get(NEW, params={"return_to": "/flows/flo_1"}, headers=HTMX_PANE)
    assert "<html" not in pane.text
    assert "data-discard-dialog" in pane.text and "Discard changes" in pane.text


def test_save_goes_back_with_the_new_connection(server: Server,
                                                source: dict[str, Any]) -> None:
    with browser(server) as me:
        plain = save(me, source["write_key"], endpoint=server.sandbox_url,
                     return_to="/flows/flo_1?step=source&connection=old")
        htmx = save(me, source["write_key"], name="Segment - app", endpoint=server.sandbox_url,
                    htmx=True, return_to="/flows/flo_2", then="close")
    assert plain.status_code == 303
    first = urlsplit(plain.headers["location"])
    assert first.path == "/flows/flo_1"
    query = parse_qs(first.query)
    assert query["step"] == ["source"]
    assert htmx.status_code == 200
    second = urlsplit(htmx.headers["HX-Redirect"])
    assert second.path == "/flows/flo_2"
    ids = {c["name"]: c["id"] for c in server.api.get("/api/v1/connections").json()}
    assert query["connection"] == [ids["Segment - shop"]]
    assert parse_qs(second.query)["connection"] == [ids["Segment - app"]]


def test_a_failed_save_keeps_return_to_and_never_the_key(server: Server) -> None:
    with browser(server) as me:
        failed = save(me, UNKNOWN_KEY, name="", endpoint=server.sandbox_url,
                      return_to="/flows/flo_1", htmx=True)
    assert failed.status_code == 422
    assert hidden_return_to(failed.text) == "/flows/flo_1"
    assert close_url(failed.text) == "/flows/flo_1"
    assert UNKNOWN_KEY not in failed.text
    assert "enter the write key again" not in failed.text  # the browser keeps it


# ---- the write key against this server's Local Segment ---------------------------------------

def test_an_unknown_key_fails_against_this_servers_local_segment(server: Server) -> None:
    with browser(server) as me:
        tested = test(me, UNKNOWN_KEY, server.sandbox_url)
        saved = save(me, UNKNOWN_KEY, endpoint=server.sandbox_url, htmx=True)
    assert tested.status_code == 200
    assert "The connection failed" in tested.text
    assert "The connection works" not in tested.text
    assert "The receiver has no source with this write key" in tested.text
    assert "Write key: unknown" in tested.text
    assert saved.status_code == 422
    assert "The connection was not saved because its test failed" in saved.text
    assert 'id="field-settings-write_key" name="settings.write_key"' in saved.text
    assert re.search(r'id="field-settings-write_key"[^>]*aria-invalid="true"', saved.text)
    assert UNKNOWN_KEY not in tested.text + saved.text
    assert server.api.get("/api/v1/connections").json() == []


def test_a_known_key_of_the_local_segment_works(server: Server,
                                                source: dict[str, Any]) -> None:
    with browser(server) as me:
        tested = test(me, source["write_key"], server.sandbox_url)
    assert "The connection works" in tested.text
    assert "Write key: recognised" in tested.text


def test_a_receiver_that_answers_401_fails_the_test(server: Server) -> None:
    with status_receiver() as (url, answers), browser(server) as me:
        answers.settings_status = 401
        tested = test(me, UNKNOWN_KEY, url)
        answers.tracking_status = 401
        rejected = test(me, UNKNOWN_KEY, url)
    assert "The connection failed" in tested.text and "Write key: rejected" in tested.text
    assert "The connection failed" in rejected.text
    assert "The write key was rejected (401)" in rejected.text


# ---- Segment itself, on loopback -------------------------------------------------------------

class ToLoopback(httpx.HTTPTransport):
    """Sends what is meant for Segment's hosts to a loopback server; or fails as DNS would."""

    def __init__(self, base: str | None) -> None:
        super().__init__()
        self.base = httpx.URL(base) if base else None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert request.url.host in ("api.segment.io", "cdn.segment.com")
        if self.base is None:
            raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution",
                                     request=request)
        request.url = request.url.copy_with(scheme=self.base.scheme, host=self.base.host,
                                            port=self.base.port)
        return super().handle_request(request)


@contextmanager
def segment_on_loopback(monkeypatch: pytest.MonkeyPatch,
                        answers: Answers | None = None) -> Iterator[Answers]:
    """Segment's boundary only: the app's HTTP client reaches a loopback server (or no
    network at all) when it calls api.segment.io and cdn.segment.com."""

    def client(**options: Any) -> httpx.Client:
        return httpx.Client(transport=ToLoopback(base), **options)

    if answers is None:  # no internet
        base = None
        monkeypatch.setattr(segment_app, "httpx", SimpleNamespace(Client=client))
        yield Answers()
        return
    with status_receiver() as (base, live):
        live.tracking_status, live.settings_status = answers.tracking_status, 404  # as Segment
        monkeypatch.setattr(segment_app, "httpx", SimpleNamespace(Client=client))
        yield live


def test_against_segment_an_unknown_key_is_a_warning_not_works(
    server: Server, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with segment_on_loopback(monkeypatch, Answers()) as answers, browser(server) as me:
        tested = test(me, UNKNOWN_KEY)
        saved = save(me, UNKNOWN_KEY, name="Segment - real")
        assert answers.requests[0]["path"] == "/v1/identify"
    assert tested.status_code == 200
    assert "The connection works" not in tested.text
    assert "Segment was reached; the write key could not be confirmed" in tested.text
    assert "result-warn" in tested.text and "result-ok" not in tested.text
    assert "Connections &gt; Sources &gt; your source &gt; Debugger" in tested.text
    assert saved.status_code == 303  # a warning: Segment keeps valid keys it answers 404 for
    assert [c["name"] for c in server.api.get("/api/v1/connections").json()] == ["Segment - real"]


def test_no_internet_says_how_to_use_this_servers_local_segment(
    server: Server, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with segment_on_loopback(monkeypatch), browser(server) as me:
        tested = test(me, UNKNOWN_KEY)
    assert "The connection failed" in tested.text
    assert "api.segment.io could not be found (DNS)" in tested.text
    assert f"set Custom endpoint URL (under Advanced settings) to {server.sandbox_url}" \
        in tested.text
    assert f'data-value="{server.sandbox_url}"' in tested.text  # one click fills it in
    assert "127.0.0.1:8000" not in tested.text


def test_help_and_errors_show_this_servers_address(server: Server) -> None:
    with browser(server) as me:
        page = me.get(NEW)
        failed = save(me, "k" * 32, endpoint="ftp://nowhere", htmx=True)
    assert f"segbridge&#39;s local Segment ({server.sandbox_url})" in page.text
    assert "127.0.0.1:8000" not in page.text
    assert f"e.g. {server.sandbox_url}" in failed.text
    assert "127.0.0.1:8000" not in failed.text


def test_a_failed_save_on_the_endpoint_opens_advanced_settings(server: Server) -> None:
    refused = "http://127.0.0.1:9/sandbox"
    with browser(server) as me:
        failed = save(me, "k" * 32, endpoint=refused, htmx=True)
    assert failed.status_code == 422
    assert '<details id="advanced" class="advanced" open>' in failed.text
    assert re.search(r'id="field-settings-endpoint"[^>]*aria-invalid="true"', failed.text)

"""The flow builder's Add source pane offers HTTP API: a flow's source is an API request with
its pagination and incremental "since", saved as the flow document's ``type: http`` export,
shown again as saved, its first records sampled from the API, and every refused value named at
its field."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.apps.http.shop_api import TOKEN, ShopState, shop_api
from tests.integration.conftest import Server
from tests.integration.web.test_flow_builder import PANE, flow_doc, new_flow, post
from tests.support import builder

browser = builder.browser  # the fixture

FORM = {"app": "http", "export.connection": "Shop API", "export.method": "GET",
        "export.path": "/pages", "export.query": "status=paid\nregion=eu",
        "export.body": "", "export.records": "data.items", "export.format": "json",
        "export.pagination.type": "page", "export.pagination.param": "",
        "export.pagination.size": "10", "export.pagination.size_param": "per_page",
        "export.pagination.max_pages": "", "export.since.field": "updated_at",
        "export.since.param": "updated_since", "export.since.lag_seconds": "60",
        "export.key_field": "id"}


@pytest.fixture
def api(server: Server) -> Iterator[tuple[str, ShopState]]:
    with shop_api(auth="bearer") as (url, state):
        created = server.api.post("/api/v1/connections", json={
            "name": "Shop API", "application": "http",
            "settings": {"base_url": url, "auth": "bearer", "token": TOKEN,
                         "test_request": "GET /health"}})
        assert created.status_code == 201, created.text
        yield url, state


def test_an_http_source_is_built_in_the_pane_and_shown_as_saved(
    server: Server, browser: httpx.Client, shop: dict[str, Any],
    api: tuple[str, ShopState],
) -> None:
    flow_id = new_flow(browser, shop)
    choose = browser.get(f"/flows/{flow_id}/source", headers=PANE)
    assert 'id="source-app-http"' in choose.text
    pane = browser.get(f"/flows/{flow_id}/source?app=http", headers=PANE)
    back = f"%2Fflows%2F{flow_id}%2Fsource%3Fapp%3Dhttp"
    assert f'href="/connections/new/http?return_to={back}"' in pane.text
    create = browser.get(f"/connections/new/http?return_to={back}", headers=PANE)
    assert create.status_code == 200
    for setting in ("base_url", "auth", "token", "api_key", "client_secret", "headers"):
        assert f'name="settings.{setting}"' in create.text or \
            f'name="{setting}"' in create.text, setting
    assert '<option value="Shop API">Shop API</option>' in pane.text
    saved = post(browser, f"/flows/{flow_id}/source", FORM, headers=PANE)
    assert saved.status_code == 200, saved.text
    assert flow_doc(server, flow_id)["export"] == {
        "type": "http", "connection": "Shop API", "path": "/pages",
        "query": {"status": "paid", "region": "eu"}, "records": "data.items",
        "pagination": {"type": "page", "size": 10, "size_param": "per_page"},
        "since": {"field": "updated_at", "param": "updated_since", "lag_seconds": 60},
        "key_field": "id"}
    assert "u1@example.com" in saved.text  # the first records, read from the API
    again = browser.get(f"/flows/{flow_id}/source", headers=PANE)
    assert 'value="data.items"' in again.text and 'value="per_page"' in again.text
    assert "status=paid\nregion=eu</textarea>" in again.text
    assert '<option value="page" selected>' in again.text


def test_a_refused_http_source_changes_nothing_and_names_its_fields(
    server: Server, browser: httpx.Client, shop: dict[str, Any],
    api: tuple[str, ShopState],
) -> None:
    flow_id = new_flow(browser, shop)
    refused = post(browser, f"/flows/{flow_id}/source",
                   {**FORM, "export.path": "pages", "export.body": "{not json",
                    "export.pagination.type": "cursor", "export.since.lag_seconds": "soon"},
                   headers=PANE)
    assert refused.status_code == 422
    for name in ("export-path", "export-body", "export-pagination-cursor_path",
                 "export-pagination-cursor_param", "export-since-lag_seconds"):
        assert re.search(rf'id="field-{name}-error" class="field-error">[^<]+<',
                         refused.text), name
    assert "export" not in flow_doc(server, flow_id)

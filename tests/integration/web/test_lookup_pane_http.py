"""The Lookup pane with an HTTP API connection (a real customers API on loopback): choosing
the connection shows the request's fields instead of the query and the key column; a saved
lookup is the document's ``request``/``result`` form and its preview shows what the API
found; refused values are named at their fields with nothing changed; a save in the SQL form
(a browser without htmx) is refused and the pane comes back in the HTTP form."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from tests.integration.apps.http.shop_api import API_KEY, ShopState, shop_api
from tests.integration.conftest import Server
from tests.integration.flows.conftest import shop  # noqa: F401
from tests.integration.web.test_flow_builder import (
    PANE,
    flow_doc,
    post,
)
from tests.integration.web.test_lookup_pane import field_error, preview_rows
from tests.support import builder

client, flow_id = builder.client, builder.flow_id  # the fixtures

HTTP_FORM = {"form": "request", "lookup.name": "customer", "lookup.connection": "CRM API",
             "lookup.request.method": "GET", "lookup.request.path": "/customers/{id}",
             "lookup.request.query": "", "lookup.request.body": "", "lookup.result": "data",
             "param": ["id", ""], "param_field": ["customer_id", ""],
             "lookup.on_missing": "leave_empty", "lookup.cache.size": "",
             "lookup.cache.ttl_seconds": ""}


@pytest.fixture
def crm_api(server: Server) -> Iterator[ShopState]:
    """An HTTP API connection 'CRM API' whose API knows c1 (pro) and c3 (team), not c2."""
    with shop_api(records=0, auth="api_key_header") as (url, state):
        state.customers = {"c1": {"id": "c1", "plan": "pro"}, "c3": {"id": "c3", "plan": "team"}}
        made = server.api.post("/api/v1/connections", json={
            "name": "CRM API", "application": "http",
            "settings": {"base_url": url, "auth": "api_key_header",
                         "api_key_name": "X-API-Key", "api_key": API_KEY,
                         "test_request": "GET /health"}})
        assert made.status_code == 201, made.text
        yield state


def test_an_http_lookup_is_built_in_the_pane_and_previews_what_the_api_found(
        server: Server, client: httpx.Client, crm_api: ShopState, flow_id: str) -> None:
    pane = client.get(f"/flows/{flow_id}/lookups/new", headers=PANE)
    assert '<option value="CRM API">CRM API</option>' in pane.text
    assert 'name="lookup.query"' in pane.text  # no connection chosen yet: the SQL form
    assert 'hx-get="/flows/' in pane.text and 'hx-trigger="change"' in pane.text

    typed = urlencode({"lookup.name": "customer", "lookup.connection": "CRM API"})
    chosen = client.get(f"/flows/{flow_id}/lookups/new?{typed}", headers=PANE)
    assert chosen.status_code == 200
    assert 'name="lookup.request.path"' in chosen.text and 'name="lookup.result"' in chosen.text
    assert 'name="lookup.query"' not in chosen.text
    assert 'name="lookup.key_column"' not in chosen.text
    assert 'value="customer"' in chosen.text  # what was typed, kept

    saved = post(client, f"/flows/{flow_id}/lookups", HTTP_FORM, headers=PANE)

    assert saved.status_code == 200, saved.text
    assert flow_doc(server, flow_id)["steps"] == [{"lookup": {
        "name": "customer", "connection": "CRM API",
        "request": {"path": "/customers/{id}"}, "result": "data",
        "params": {"id": "customer_id"}, "on_missing": "leave_empty"}}]
    assert preview_rows(saved.text) == {
        "line 2": 'c1 | {"id": "c1", "plan": "pro"} | Kept',
        "line 3": "c2 | nothing found | Kept",
        "line 4": 'c3 | {"id": "c3", "plan": "team"} | Kept'}
    again = client.get(f"/flows/{flow_id}/lookups/0", headers=PANE)
    assert 'value="/customers/{id}"' in again.text and 'value="data"' in again.text
    assert 'name="form" value="request"' in again.text


def test_a_post_request_with_query_lines_and_a_body_is_saved_as_written(
        server: Server, client: httpx.Client, crm_api: ShopState, flow_id: str) -> None:
    form = {**HTTP_FORM, "lookup.request.method": "POST",
            "lookup.request.path": "/customers/find", "lookup.request.query": "v=2",
            "lookup.request.body": '{"email": "{id}@example.com"}', "lookup.result": "results"}
    saved = post(client, f"/flows/{flow_id}/lookups", form, headers=PANE)
    assert saved.status_code == 200, saved.text
    assert flow_doc(server, flow_id)["steps"][0]["lookup"]["request"] == {
        "path": "/customers/find", "method": "POST", "query": {"v": "2"},
        "body": {"email": "{id}@example.com"}}
    again = client.get(f"/flows/{flow_id}/lookups/0", headers=PANE)
    assert "v=2</textarea>" in again.text
    assert '<option value="POST" selected>' in again.text


def test_refused_http_values_are_named_at_their_fields_and_change_nothing(
        server: Server, client: httpx.Client, crm_api: ShopState, flow_id: str) -> None:
    before = flow_doc(server, flow_id)
    bad = post(client, f"/flows/{flow_id}/lookups",
               {**HTTP_FORM, "lookup.request.path": "customers/{id}/{region}",
                "lookup.request.body": "not json"}, headers=PANE)
    assert bad.status_code == 422, bad.text
    assert "Start the path with /" in field_error(bad.text, "lookup-request-path")
    assert "JSON object or array" in field_error(bad.text, "lookup-request-body")
    assert 'value="customers/{id}/{region}"' in bad.text
    unbound = post(client, f"/flows/{flow_id}/lookups",
                   {**HTTP_FORM, "lookup.request.path": "/customers/{id}/{region}"},
                   headers=PANE)
    assert unbound.status_code == 422, unbound.text
    assert "{region} has no value" in field_error(unbound.text, "lookup-params")
    assert 'name="param" value="region"' in unbound.text  # its row, ready to fill
    assert flow_doc(server, flow_id) == before


def test_a_save_in_the_sql_form_with_an_http_connection_comes_back_in_the_http_form(
        server: Server, client: httpx.Client, crm_api: ShopState, flow_id: str) -> None:
    before = flow_doc(server, flow_id)
    sql = {"form": "query", "lookup.name": "customer", "lookup.connection": "CRM API",
           "lookup.query": "select plan from customers where id = :id", "param": ["id"],
           "param_field": ["customer_id"], "lookup.key_column": "",
           "lookup.on_missing": "leave_empty"}
    refused = post(client, f"/flows/{flow_id}/lookups", sql, headers=PANE)
    assert refused.status_code == 422, refused.text
    assert "takes request and result, not query" in refused.text
    assert 'name="lookup.request.path"' in refused.text
    assert flow_doc(server, flow_id) == before
    assert [path for path in crm_api.paths() if path.startswith("/customers")] == []

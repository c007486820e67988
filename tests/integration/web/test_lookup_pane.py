"""The Lookup pane of the flow builder through a browser session (HTML forms, htmx and plain):
a lookup on a real SQLite customer table added, its found values previewed, edited and
removed; each refused save naming its field and changing nothing; another account's
connection neither offered nor accepted; filters saved after a lookup keep it."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.integration.conftest import Server
from tests.integration.flows.conftest import shop  # noqa: F401
from tests.integration.test_access import other_account_api
from tests.integration.web.test_flow_builder import (
    PANE,
    flow_doc,
    post,
)
from tests.support import builder

client, flow_id = builder.client, builder.flow_id  # the fixtures

QUERY = "select id, plan from customers where id in :customer"


@pytest.fixture
def crm(server: Server, tmp_path: Path) -> dict[str, Any]:
    """A Database connection 'CRM' on a SQLite file with customers c1 (pro) and c3 (team):
    the orders' c2 has no row."""
    path = tmp_path / "crm.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE customers (id VARCHAR(20) PRIMARY KEY, "
                                "plan VARCHAR(20))"))
        connection.execute(text("INSERT INTO customers VALUES ('c1', 'pro'), ('c3', 'team')"))
    engine.dispose()
    response = server.api.post("/api/v1/connections", json={
        "name": "CRM", "application": "database", "settings": {"url": f"sqlite:///{path}"}})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def lookup_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "lookup.name": "customer", "lookup.connection": "CRM", "lookup.query": QUERY,
        "param": ["customer", ""], "param_field": ["customer_id", ""],
        "lookup.key_column": "id", "lookup.on_missing": "leave_empty",
        "lookup.cache.size": "", "lookup.cache.ttl_seconds": ""}
    return {**form, **changes}


def field_error(html: str, name: str) -> str:
    found = re.search(rf'id="field-{name}-error" class="field-error">([^<]*)<', html)
    assert found is not None, f"no error element for {name}"
    return found.group(1)


def preview_rows(html: str) -> dict[str, str]:
    """The lookup preview's rows: record ref -> the row's text."""
    section = html[html.index('id="lookup-preview"'):]
    rows = re.findall(r'<tr class="lookup-record">(.*?)</tr>', section, re.S)
    found = {}
    for row in rows:
        cells = [unescape(re.sub(r"<[^>]+>", "", cell)).strip()
                 for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        found[cells[0]] = " | ".join(cells[1:])
    return found


def test_a_lookup_is_added_and_previews_what_it_finds(
        server: Server, client: httpx.Client, crm: dict[str, Any], flow_id: str) -> None:
    board = client.get(f"/flows/{flow_id}")
    assert 'id="add-lookup"' in board.text and "Lookups are coming" not in board.text

    pane = client.get(f"/flows/{flow_id}/lookups/new", headers=PANE)
    assert pane.status_code == 200 and "<h1" not in pane.text
    assert '<option value="CRM">CRM</option>' in pane.text
    assert '<datalist id="record-fields"><option value="order_id">' in pane.text
    assert '<option value="customer_id">' in pane.text  # the source's fields, offered
    assert "Save the lookup to see a few records" in pane.text

    saved = post(client, f"/flows/{flow_id}/lookups", lookup_form(), headers=PANE)
    assert saved.status_code == 200, saved.text
    assert "Lookup saved." in saved.text and saved.headers["HX-Push-Url"] == \
        f"/flows/{flow_id}/lookups/0"
    assert 'id="card-lookup-0"' in saved.text and 'hx-swap-oob="true"' in saved.text
    assert flow_doc(server, flow_id)["steps"] == [{"lookup": {
        "name": "customer", "connection": "CRM", "query": QUERY,
        "params": {"customer": "customer_id"}, "key_column": "id",
        "on_missing": "leave_empty"}}]  # the cache's defaults are not written

    rows = preview_rows(saved.text)
    assert rows == {"line 2": 'c1 | {"id": "c1", "plan": "pro"} | Kept',
                    "line 3": "c2 | nothing found | Kept",
                    "line 4": 'c3 | {"id": "c3", "plan": "team"} | Kept'}

    page = client.get(f"/flows/{flow_id}")  # the board: the lookup on its card
    card = page.text[page.text.index('id="card-lookup-0"'):]
    assert "<code>customer</code>" in card[:400] and "<strong>CRM</strong>" in card[:600]


def test_a_refused_lookup_names_each_field_and_changes_nothing(
        server: Server, client: httpx.Client, crm: dict[str, Any], flow_id: str) -> None:
    before = flow_doc(server, flow_id)
    bad = post(client, f"/flows/{flow_id}/lookups",
               lookup_form(**{"lookup.name": "customer.row", "lookup.cache.size": "lots"}),
               headers=PANE)
    assert bad.status_code == 422
    assert "no dots" in field_error(bad.text, "lookup-name")
    assert "whole number" in field_error(bad.text, "lookup-cache-size")
    assert 'id="lookup-cache" open' in bad.text  # the advanced part opens on its error
    assert 'value="customer.row"' in bad.text  # what was typed, kept
    nowhere = post(client, f"/flows/{flow_id}/lookups",
                   lookup_form(**{"lookup.connection": "Nowhere"}), headers=PANE)
    assert nowhere.status_code == 422
    assert "Nowhere" in field_error(nowhere.text, "lookup-connection")
    assert flow_doc(server, flow_id) == before

    # a parameter of the query without a field: named at the query, its row ready to fill
    unbound = post(client, f"/flows/{flow_id}/lookups",
                   lookup_form(param=[""], param_field=[""]), headers=PANE)
    assert unbound.status_code == 422
    assert ":customer has no value" in field_error(unbound.text, "lookup-query")
    assert 'id="param-0" name="param" value="customer"' in unbound.text

    # a field typed without its parameter's name is not dropped silently
    unnamed = post(client, f"/flows/{flow_id}/lookups",
                   lookup_form(param=["customer", ""], param_field=["customer_id", "email"]),
                   headers=PANE)
    assert unnamed.status_code == 422
    assert "email" in field_error(unnamed.text, "lookup-params")

    batched = post(client, f"/flows/{flow_id}/lookups",
                   lookup_form(**{"lookup.query": "select id, plan from customers "
                                                  "where id = :customer"}), headers=PANE)
    assert batched.status_code == 422
    assert "in :customer" in field_error(batched.text, "lookup-query")
    assert flow_doc(server, flow_id) == before


def test_another_accounts_connection_is_neither_offered_nor_accepted(
        server: Server, client: httpx.Client, crm: dict[str, Any], flow_id: str,
        tmp_path: Path) -> None:
    create_engine(f"sqlite:///{tmp_path / 'theirs.db'}").connect().close()
    with other_account_api(server) as other:
        theirs = other.post("/api/v1/connections", json={
            "name": "Their CRM", "application": "database",
            "settings": {"url": f"sqlite:///{tmp_path / 'theirs.db'}"}})
        assert theirs.status_code == 201, theirs.text
    their_id = theirs.json()["id"]
    pane = client.get(f"/flows/{flow_id}/lookups/new")
    assert "Their CRM" not in pane.text and '<option value="CRM">' in pane.text
    back = client.get(f"/flows/{flow_id}/lookups/new?connection={their_id}")
    assert "Their CRM" not in back.text
    for named in ("Their CRM", their_id):
        refused = post(client, f"/flows/{flow_id}/lookups",
                       lookup_form(**{"lookup.connection": named}), headers=PANE)
        assert refused.status_code == 422
        assert "your account" in field_error(refused.text, "lookup-connection")
    assert "steps" not in flow_doc(server, flow_id) or not flow_doc(server, flow_id)["steps"]


def test_a_lookup_is_edited_kept_by_the_filters_and_removed(
        server: Server, client: httpx.Client, crm: dict[str, Any], flow_id: str) -> None:
    assert post(client, f"/flows/{flow_id}/lookups", lookup_form(),
                headers=PANE).status_code == 200

    # plain forms (no JavaScript): post, then see the pane again
    edited = post(client, f"/flows/{flow_id}/lookups/0",
                  lookup_form(**{"lookup.on_missing": "ignore_record",
                                 "lookup.cache.size": "50"}))
    assert edited.status_code == 303
    assert edited.headers["location"] == f"/flows/{flow_id}/lookups/0?saved=1"
    again = client.get(edited.headers["location"])
    assert "<h1" in again.text and "Lookup saved." in again.text
    assert 'id="on-missing-ignore_record" checked' in again.text
    assert 'id="field-lookup-cache-size" name="lookup.cache.size"' in again.text
    assert preview_rows(again.text)["line 3"] == "c2 | nothing found | Ignored"
    lookup = flow_doc(server, flow_id)["steps"][0]["lookup"]
    assert lookup["on_missing"] == "ignore_record" and lookup["cache"]["size"] == 50

    # filters saved after it keep it; a bad filter is named as the pane's filter
    filtered = post(client, f"/flows/{flow_id}/steps",
                    {"expression": ["field('customer.plan') == 'pro'", "total >"]},
                    headers=PANE)
    assert filtered.status_code == 422
    assert field_error(filtered.text, "steps-1-filter-expression")
    kept = post(client, f"/flows/{flow_id}/steps",
                {"expression": ["field('customer.plan') == 'pro'"]}, headers=PANE)
    assert kept.status_code == 200
    steps = flow_doc(server, flow_id)["steps"]
    assert [next(iter(step)) for step in steps] == ["lookup", "filter"]

    assert client.get(f"/flows/{flow_id}/lookups/1").status_code == 404
    removed = post(client, f"/flows/{flow_id}/lookups/0/delete")
    assert removed.status_code == 303
    assert removed.headers["location"] == f"/flows/{flow_id}?done=lookup_removed"
    assert flow_doc(server, flow_id)["steps"] == [
        {"filter": {"expression": "field('customer.plan') == 'pro'"}}]
    assert 'id="card-lookup-0"' not in client.get(f"/flows/{flow_id}").text


def test_the_preview_says_why_the_records_cannot_be_looked_up(
        server: Server, client: httpx.Client, crm: dict[str, Any], flow_id: str,
        tmp_path: Path) -> None:
    assert post(client, f"/flows/{flow_id}/lookups", lookup_form(),
                headers=PANE).status_code == 200
    engine = create_engine(crm["settings"]["url"])
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE customers"))
    engine.dispose()
    pane = client.get(f"/flows/{flow_id}/lookups/0", headers=PANE)
    assert pane.status_code == 200
    section = pane.text[pane.text.index('id="lookup-preview"'):]
    assert "The records cannot be looked up" in section and "customers" in section
    assert 'class="lookup-record"' not in section


def test_a_monitor_sees_a_lookup_but_cannot_change_it(
        server: Server, client: httpx.Client, crm: dict[str, Any], flow_id: str) -> None:
    assert post(client, f"/flows/{flow_id}/lookups", lookup_form(),
                headers=PANE).status_code == 200
    with builder.monitor(server) as monitor:
        board = monitor.get(f"/flows/{flow_id}")
        assert 'id="card-lookup-0"' in board.text and 'id="add-lookup"' not in board.text
        pane = monitor.get(f"/flows/{flow_id}/lookups/0")
        assert pane.status_code == 200 and 'id="read-only-pane"' in pane.text
        assert 'id="save-lookup"' not in pane.text and 'id="remove-lookup"' not in pane.text
        assert '<fieldset class="plain-fieldset" disabled>' in pane.text
        assert "does not read the source's records" in pane.text
        for path in (f"/flows/{flow_id}/lookups", f"/flows/{flow_id}/lookups/0",
                     f"/flows/{flow_id}/lookups/0/delete"):
            assert post(monitor, path, lookup_form()).status_code == 403, path
    assert len(flow_doc(server, flow_id)["steps"]) == 1


def test_create_connection_comes_back_with_what_was_typed(
        server: Server, client: httpx.Client, crm: dict[str, Any], flow_id: str) -> None:
    typed = lookup_form(**{"lookup.connection": "", "param": [""], "param_field": [""],
                           "app": "database", "index": ""})
    out = post(client, f"/flows/{flow_id}/lookups/new/connection", typed)
    assert out.status_code == 303
    target = out.headers["location"]
    assert target.startswith("/connections/new/database?return_to=")
    back = parse_qs(urlsplit(target).query)["return_to"][0]
    assert back.startswith(f"/flows/{flow_id}/lookups/new?") and "csrf" not in back
    assert client.get(target).status_code == 200  # the Create connection pane

    returned = client.get(f"{back}&connection={crm['id']}")
    assert returned.status_code == 200 and "Connection &#39;CRM&#39; chosen." in returned.text
    assert 'id="field-lookup-name" name="lookup.name"' in returned.text
    assert 'value="customer"' in returned.text and f">{QUERY}</textarea>" in returned.text
    assert '<option value="CRM" selected>' in returned.text
    assert 'id="param-0" name="param" value="customer"' in returned.text  # from the query
    assert re.search(r'name="lookup.key_column"[^>]* value="id"', returned.text)

    with_htmx = post(client, f"/flows/{flow_id}/lookups/new/connection", typed, headers=PANE)
    assert with_htmx.status_code == 200
    assert json.loads(with_htmx.headers["HX-Location"]) == {"path": target,
                                                            "target": "#pane-host"}
    long = post(client, f"/flows/{flow_id}/lookups/new/connection",
                {**typed, "lookup.query": QUERY + " --" + "x" * 3000})
    back = parse_qs(urlsplit(long.headers["location"]).query)["return_to"][0]
    assert "lookup.name=customer" in back and "lookup.query" not in back  # too long to keep
    assert post(client, f"/flows/{flow_id}/lookups/new/connection",
                {**typed, "index": "0"}).status_code == 404  # the flow has no lookup 1

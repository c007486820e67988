"""The Integrations pages and deleting a connection, through a browser session with its CSRF
token: list, create, rename, delete (refused with the reason while it holds flows), what a
monitor sees and is refused; a connection's delete refused naming the flow that uses it."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from segbridge.accounts import service as accounts
from segbridge.accounts.service import Principal
from segbridge.runtime import ADMIN_EMAIL
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    orders,
    track_flow,
    wait_for_run,
    workers,  # noqa: F401 - the flows tests' fixture, here on this test's server
    write_csv,
)
from tests.support.browser_session import browser


def post(client: httpx.Client, path: str, **fields: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": client.headers["X-Test-Csrf"], **fields})


def monitor(server: Server) -> str:
    email = "mo@example.com"
    with server.runtime.db.session() as session:
        account = accounts.find_user(session, ADMIN_EMAIL).account_id
        accounts.create_user(session, account, email, None, role="monitor")
    return email


def integration_id(server: Server, name: str) -> str:
    found = [i["id"] for i in server.api.get("/api/v1/integrations").json() if i["name"] == name]
    assert len(found) == 1, found
    return str(found[0])


def flow_in_shop(server: Server, source: dict[str, Any], tmp_path: Path,
                 name: str = "Orders to Segment") -> dict[str, Any]:
    """A flow of the integration 'Shop' (made here if need be) using 'Segment - shop'."""
    if not any(i["name"] == "Shop" for i in server.api.get("/api/v1/integrations").json()):
        assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    if not any(c["name"] == "Segment - shop"
               for c in server.api.get("/api/v1/connections").json()):
        server.new_connection("Segment - shop", source["write_key"])
    doc = track_flow(name, write_csv(tmp_path / "orders.csv", orders(3)), "Segment - shop")
    created = server.api.post("/api/v1/flows", json=doc)
    assert created.status_code == 201, created.text
    flow: dict[str, Any] = created.json()
    return flow


def text_of(html: str) -> str:
    """The page's text, tags removed and spaces collapsed (what a reader sees, roughly)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def test_an_empty_list_invites_creating_the_first_integration(server: Server) -> None:
    with browser(server) as me:
        page = me.get("/integrations")
    assert page.status_code == 200
    assert "No integrations yet" in page.text
    assert 'id="create-integration"' in page.text
    assert 'name="csrf_token"' in page.text


def test_create_rename_and_delete_an_integration(server: Server) -> None:
    with browser(server) as me:
        created = post(me, "/integrations", name="  Shop  ")
        assert created.status_code == 303
        shop = integration_id(server, "Shop")
        assert created.headers["location"] == f"/integrations/{shop}?done=created"
        page = me.get(created.headers["location"])
        assert page.status_code == 200
        assert "<h1>Shop</h1>" in page.text
        assert "The integration was created." in page.text
        assert f'href="/flows/new?integration={shop}"' in page.text
        assert "No flows yet" in page.text

        listing = me.get("/integrations").text
        assert f'href="/integrations/{shop}">Shop</a>' in listing
        assert "0 flows" in text_of(listing) and "Never run" in listing

        renamed = post(me, f"/integrations/{shop}/rename", name="Web shop")
        assert renamed.status_code == 303
        assert "<h1>Web shop</h1>" in me.get(renamed.headers["location"]).text

        deleted = post(me, f"/integrations/{shop}/delete")
        assert deleted.status_code == 303
        assert deleted.headers["location"] == "/integrations?done=deleted"
        assert "The integration was deleted." in me.get(deleted.headers["location"]).text
    assert server.api.get("/api/v1/integrations").json() == []


def test_a_bad_or_taken_name_is_shown_next_to_the_field_and_changes_nothing(
    server: Server,
) -> None:
    with browser(server) as me:
        assert post(me, "/integrations", name="Shop").status_code == 303
        assert post(me, "/integrations", name="CRM").status_code == 303
        empty = post(me, "/integrations", name="   ")
        taken = post(me, "/integrations", name="shop")
        crm = integration_id(server, "CRM")
        clash = post(me, f"/integrations/{crm}/rename", name="Shop")
    assert empty.status_code == 422
    assert re.search(r'id="field-name-error" class="field-error">Enter a name of 1 to 100 '
                     r"characters\.</p>", empty.text)
    assert 'aria-invalid="true"' in empty.text
    assert taken.status_code == 422
    assert "An integration named &#39;shop&#39; exists already; choose another name." in taken.text
    assert 'value="shop"' in taken.text  # what was typed stays in the field
    assert clash.status_code == 422 and "<h1>CRM</h1>" in clash.text
    assert 'value="Shop"' in clash.text
    names = sorted(i["name"] for i in server.api.get("/api/v1/integrations").json())
    assert names == ["CRM", "Shop"]


def test_the_list_and_page_show_flows_last_run_and_open_errors(
    server: Server, source: dict[str, Any], tmp_path: Path,
) -> None:
    flow = flow_in_shop(server, source, tmp_path)
    unfinished = server.api.post("/api/v1/integrations", json={"name": "CRM"}).json()
    shop = integration_id(server, "Shop")
    server.runtime.flows.create(
        _admin(server), {"name": "Draft", "integration": "CRM"}, unfinished=True)
    with browser(server) as me:
        listing = me.get("/integrations").text
        shop_page = me.get(f"/integrations/{shop}").text
        crm_page = me.get(f"/integrations/{unfinished['id']}").text
    shop_row = _row(listing, f"integration-{shop}")
    assert "1 flow" in text_of(shop_row) and "Never run" in shop_row
    assert "No open errors" in shop_row
    flow_row = _row(shop_page, f"flow-{flow['id']}")
    assert f'href="/flows/{flow["id"]}">Orders to Segment</a>' in flow_row
    assert "Enabled" in flow_row and "Run by hand" in flow_row
    assert "Unfinished" in crm_page
    assert "needs a source (export) and a destination (import)" in text_of(crm_page)


def test_deleting_an_integration_with_flows_is_refused_with_the_reason(
    server: Server, source: dict[str, Any], tmp_path: Path,
) -> None:
    flow_in_shop(server, source, tmp_path)
    shop = integration_id(server, "Shop")
    with browser(server) as me:
        refused = post(me, f"/integrations/{shop}/delete")
    assert refused.status_code == 409
    assert ("The integration &#39;Shop&#39; still has flows: Orders to Segment. Delete or move "
            "them first.") in refused.text
    assert "<h1>Shop</h1>" in refused.text
    assert integration_id(server, "Shop") == shop


def test_a_monitor_sees_the_lists_without_buttons_and_is_refused_every_change(
    server: Server, source: dict[str, Any], tmp_path: Path,
) -> None:
    flow_in_shop(server, source, tmp_path)
    shop = integration_id(server, "Shop")
    connection = server.api.get("/api/v1/connections").json()[0]
    with browser(server, monitor(server)) as mo:
        listing = mo.get("/integrations")
        page = mo.get(f"/integrations/{shop}")
        connections = mo.get("/connections")
        created = post(mo, "/integrations", name="Mine")
        renamed = post(mo, f"/integrations/{shop}/rename", name="Mine")
        deleted = post(mo, f"/integrations/{shop}/delete")
        gone = post(mo, f"/connections/{connection['id']}/delete")
    assert listing.status_code == 200 and page.status_code == 200
    assert "Orders to Segment" in page.text
    for html in (listing.text, page.text):
        assert 'id="create-integration"' not in html
        assert 'id="rename-integration"' not in html
        assert 'id="delete-integration"' not in html
        assert 'id="create-flow"' not in html
    assert connections.status_code == 200
    assert f'id="delete-{connection["id"]}"' not in connections.text
    for refused in (created, renamed, deleted, gone):
        assert refused.status_code == 403
        assert "Not allowed for your role" in refused.text
    assert [i["name"] for i in server.api.get("/api/v1/integrations").json()] == ["Shop"]
    assert len(server.api.get("/api/v1/connections").json()) == 1


def test_a_post_without_the_csrf_token_is_refused(server: Server) -> None:
    with browser(server) as me:
        refused = me.post("/integrations", data={"name": "Shop"})
    assert refused.status_code == 403 and "This form has expired" in refused.text
    assert server.api.get("/api/v1/integrations").json() == []


def test_a_connection_in_use_is_not_deleted_and_the_flows_using_it_are_named(
    server: Server, source: dict[str, Any], tmp_path: Path,
) -> None:
    flow = flow_in_shop(server, source, tmp_path)
    connection = next(c for c in server.api.get("/api/v1/connections").json()
                      if c["name"] == "Segment - shop")
    with browser(server) as me:
        listing = me.get("/connections").text
        row = _row(listing, f"row-{connection['id']}")
        assert f'<a href="/flows/{flow["id"]}">Orders to Segment</a>' in row
        assert f'id="confirm-delete-{connection["id"]}"' in row

        refused = post(me, f"/connections/{connection['id']}/delete")
        assert refused.status_code == 409
        assert ("&#39;Segment - shop&#39; is in use and was not deleted: flow &#39;Orders to "
                "Segment&#39; uses it. Change those first.") in refused.text
        assert len(server.api.get("/api/v1/connections").json()) == 1

        assert server.api.delete(f"/api/v1/flows/{flow['id']}").status_code == 204
        deleted = post(me, f"/connections/{connection['id']}/delete")
        assert deleted.status_code == 303
        assert deleted.headers["location"] == "/connections?done=deleted"
        after = me.get(deleted.headers["location"]).text
    assert "The connection was deleted." in after
    assert server.api.get("/api/v1/connections").json() == []


def test_database_connections_are_in_the_same_list_and_open_in_the_same_pane(
    server: Server, tmp_path: Path,
) -> None:
    shop = tmp_path / "shop.db"
    with sqlite3.connect(shop) as db:
        db.execute("CREATE TABLE orders (id INTEGER)")
    created = server.api.post("/api/v1/connections", json={
        "name": "Shop DB", "application": "database", "settings": {"url": f"sqlite:///{shop}"}})
    assert created.status_code == 201, created.text
    connection = created.json()
    with browser(server) as me:
        listing = me.get("/connections").text
        pane = me.get(f"/connections/{connection['id']}",
                      headers={"HX-Request": "true", "HX-Target": "pane-host"})
    row = _row(listing, f"row-{connection['id']}")
    assert f'hx-get="/connections/{connection["id"]}" hx-target="#pane-host"' in row
    assert "Database" in row
    assert pane.status_code == 200 and "Shop DB" in pane.text
    assert 'id="pane"' in pane.text


def _admin(server: Server) -> Principal:
    with server.runtime.db.session() as session:
        return accounts.principal_for(accounts.find_user(session, ADMIN_EMAIL), via="test")


def _row(html: str, row_id: str) -> str:
    match = re.search(r'<tr id="' + re.escape(row_id) + r'">.*?</tr>', html, re.DOTALL)
    assert match is not None, f"no row {row_id}"
    return match.group(0)


@pytest.mark.usefixtures("workers")
def test_a_run_with_a_bad_record_shows_as_last_run_and_open_error(
    server: Server, source: dict[str, Any], tmp_path: Path,
) -> None:
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    server.new_connection("Segment - shop", source["write_key"])
    rows = orders(5)
    rows[2]["customer_id"] = ""  # no userId: one record error
    doc = track_flow("Orders to Segment", write_csv(tmp_path / "orders.csv", rows),
                     "Segment - shop")
    flow = server.api.post("/api/v1/flows", json=doc).json()
    run = wait_for_run(server, server.api.post(f"/api/v1/flows/{flow['id']}/runs").json()["id"])
    assert run["status"] == "completed_with_errors", run
    shop = integration_id(server, "Shop")
    with browser(server) as me:
        listing = me.get("/integrations").text
        page = me.get(f"/integrations/{shop}").text
    line = _row(listing, f"integration-{shop}")
    assert f'href="/runs/{run["id"]}"' in line
    assert "completed with errors" in line and "1 open error" in text_of(line)
    flow_row = _row(page, f"flow-{flow['id']}")
    assert f'href="/runs/{run["id"]}"' in flow_row
    assert f'<a href="/flows/{flow["id"]}/runs">' in flow_row
    assert "1 open error" in text_of(flow_row)

"""The flow builder through a browser session: a flow built part by part (name, source by
upload, filters, schedule), every refused save changing nothing and naming its field, the YAML
downloaded and imported, and a monitor who may only look."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import SESSION_COOKIE, csrf_token_for
from segbridge.runtime import ADMIN_EMAIL
from tests.integration.conftest import Server
from tests.integration.flows.conftest import orders, shop, track_flow, write_csv  # noqa: F401

CSV = b"order_id,customer_id,status,total\n1,c1,paid,10\n2,c2,test,0\n3,c3,paid,7.5\n"
PANE = {"HX-Request": "true", "HX-Target": "pane-host"}


def session_for(server: Server, email: str = ADMIN_EMAIL) -> str:
    with server.runtime.db.session() as session:
        user = accounts.find_user(session, email)
        return accounts.issue_token(session, user, kind="session", name="client",
                                    ttl=accounts.SESSION_TTL)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    token = session_for(server)
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30,
                      cookies={SESSION_COOKIE: token}) as client:
        client.headers["X-CSRF-Token"] = csrf_token_for(token)
        yield client


def post(client: httpx.Client, path: str, data: dict[str, Any] | None = None,
         **kwargs: Any) -> httpx.Response:
    body = {"csrf_token": client.headers["X-CSRF-Token"], **(data or {})}
    return client.post(path, data=body, **kwargs)


def new_flow(client: httpx.Client, shop: dict[str, Any], name: str = "Orders") -> str:  # noqa: F811
    form = client.get(f"/flows/new?integration={shop['id']}")
    assert form.status_code == 200 and f'value="{shop["id"]}" selected' in form.text
    created = post(client, "/flows", {"name": name, "integration": shop["id"]})
    assert created.status_code == 303, created.text
    location = created.headers["location"]
    assert re.fullmatch(r"/flows/flw_\w+", location)
    return location.rsplit("/", 1)[1]


def flow_doc(server: Server, flow_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = server.api.get(f"/api/v1/flows/{flow_id}").json()["definition"]
    return doc


def upload_source(client: httpx.Client, flow_id: str, **extra: str) -> httpx.Response:
    return post(client, f"/flows/{flow_id}/source",
                {"app": "files", "file_source": "upload", "export.type": "csv",
                 "export.options.delimiter": ",", "export.options.header": "true",
                 "export.options.encoding": "utf-8", "export.key_field": "order_id", **extra},
                files={"file": ("orders.csv", CSV, "text/csv")}, headers=PANE)


def test_a_flow_is_built_part_by_part_in_the_browser(server: Server, client: httpx.Client,
                                                      shop: dict[str, Any]) -> None:  # noqa: F811
    flow_id = new_flow(client, shop)
    page = client.get(f"/flows/{flow_id}")
    assert page.status_code == 200
    assert "This flow is unfinished: add a source (export) and a destination (import)" \
        in page.text
    assert 'id="add-destination"' in page.text and 'id="add-lookup"' in page.text
    assert f'href="/flows/{flow_id}/runs"' in page.text

    choose = client.get(f"/flows/{flow_id}/source", headers=PANE)
    assert choose.text.startswith('<div class="pane-backdrop"') and "<h1" not in choose.text
    assert 'id="source-app-files"' in choose.text and 'id="source-app-database"' in choose.text
    full = client.get(f"/flows/{flow_id}/source?app=files")
    assert "<h1" in full.text and 'id="source-form"' in full.text  # the builder behind it

    saved = upload_source(client, flow_id)
    assert saved.status_code == 200, saved.text
    assert "Source saved." in saved.text
    assert 'id="flow-board" class="flow-board"' in saved.text and 'hx-swap-oob="true"' \
        in saved.text
    sample = saved.text[saved.text.index('id="source-sample"'):]
    assert "<td>c1</td>" in sample and "<td>c3</td>" in sample and "line 2" in sample
    export = flow_doc(server, flow_id)["export"]
    assert export["type"] == "csv" and export["upload"].startswith("upl_")
    assert export["key_field"] == "order_id"
    assert "orders.csv" in client.get(f"/flows/{flow_id}").text

    # the upload is kept when the source is saved again without a new file
    again = post(client, f"/flows/{flow_id}/source",
                 {"app": "files", "file_source": "upload", "export.type": "csv",
                  "export.upload": export["upload"], "export.options.delimiter": ";",
                  "export.options.header": "true", "export.options.encoding": "utf-8"},
                 headers=PANE)
    assert again.status_code == 200
    assert flow_doc(server, flow_id)["export"]["options"]["delimiter"] == ";"


def test_a_bad_source_or_filter_changes_nothing_and_names_its_field(
        server: Server, client: httpx.Client, shop: dict[str, Any]) -> None:  # noqa: F811
    flow_id = new_flow(client, shop)
    assert upload_source(client, flow_id).status_code == 200
    before = flow_doc(server, flow_id)

    bad = upload_source(client, flow_id, **{"export.options.delimiter": ";;"})
    assert bad.status_code == 422
    assert re.search(r'id="field-export-options-delimiter-error" class="field-error">[^<]+<',
                     bad.text)
    assert flow_doc(server, flow_id) == before

    filtered = post(client, f"/flows/{flow_id}/steps",
                    {"expression": ["status != 'test'", "total >"]}, headers=PANE)
    assert filtered.status_code == 422
    error = re.search(r'id="field-steps-1-filter-expression-error" class="field-error">([^<]+)<',
                      filtered.text)
    assert error is not None, filtered.text
    assert 'id="field-steps-1-filter-expression"' in filtered.text
    assert flow_doc(server, flow_id) == before

    preview = post(client, f"/flows/{flow_id}/steps/preview",
                   {"expression": ["status != 'test'", ""]}, headers={"HX-Request": "true"})
    assert preview.status_code == 200
    assert "<strong>2 of 3</strong> sample records kept" in preview.text
    assert flow_doc(server, flow_id) == before

    good = post(client, f"/flows/{flow_id}/steps", {"expression": ["status != 'test'"]},
                headers=PANE)
    assert good.status_code == 200 and "Filters saved." in good.text
    assert flow_doc(server, flow_id)["steps"] == [{"filter": {"expression": "status != 'test'"}}]
    removed = post(client, f"/flows/{flow_id}/steps",
                   {"expression": ["status != 'test'", ""], "remove": "0"}, headers=PANE)
    assert removed.status_code == 200 and flow_doc(server, flow_id)["steps"] == []


def test_a_database_source_offers_to_create_its_connection_in_place(
        server: Server, client: httpx.Client, shop: dict[str, Any]) -> None:  # noqa: F811
    flow_id = new_flow(client, shop)
    pane = client.get(f"/flows/{flow_id}/source?app=database", headers=PANE)
    back = f"%2Fflows%2F{flow_id}%2Fsource%3Fapp%3Ddatabase"
    assert f'href="/connections/new/database?return_to={back}"' in pane.text
    assert 'hx-target="#pane-host"' in pane.text and 'id="field-export-query"' in pane.text
    # back from Create connection: the new connection is chosen (an unknown id is kept as
    # typed, so the save names it)
    chosen = client.get(f"/flows/{flow_id}/source", params={"connection": "con_gone"})
    assert '<option value="">Choose a connection</option>' in chosen.text
    refused = post(client, f"/flows/{flow_id}/source",
                   {"app": "database", "export.connection": "", "export.query": " ",
                    "export.cursor.column": "updated_at",
                    "export.cursor.lag_seconds": "soon"}, headers=PANE)
    assert refused.status_code == 422
    for name in ("export-query", "export-cursor-lag_seconds"):
        assert re.search(rf'id="field-{name}-error" class="field-error">[^<]+<', refused.text), \
            name
    assert "export" not in flow_doc(server, flow_id)


def test_schedule_next_times_and_save(server: Server, client: httpx.Client,
                                      shop: dict[str, Any]) -> None:  # noqa: F811
    flow_id = new_flow(client, shop)
    pane = client.get(f"/flows/{flow_id}/schedule", headers=PANE)
    assert "Every 15 minutes" in pane.text and "<option selected>UTC</option>" in pane.text
    assert "Europe/Paris" in pane.text
    nxt = client.get(f"/flows/{flow_id}/schedule/next",
                      params={"schedule.cron": "0 2 * * *", "schedule.timezone": "Europe/Paris"})
    times = re.findall(r"<li>(\w{3} \d\d \w{3} \d{4}, \d\d:\d\d) ", nxt.text)
    assert len(times) == 5 and all(t.endswith("02:00") or t.endswith("03:00") for t in times)
    assert "(Europe/Paris)" in nxt.text
    wrong = client.get(f"/flows/{flow_id}/schedule/next", params={"schedule.cron": "daily"})
    assert "not a cron expression" in wrong.text

    bad = post(client, f"/flows/{flow_id}/schedule",
               {"schedule.cron": "daily", "schedule.timezone": "UTC"}, headers=PANE)
    assert bad.status_code == 422 and 'id="field-schedule-cron-error"' in bad.text
    assert "schedule" not in flow_doc(server, flow_id)
    good = post(client, f"/flows/{flow_id}/schedule",
                {"schedule.cron": "0 9 * * 1-5", "schedule.timezone": "Europe/Paris"})
    assert good.status_code == 303
    assert flow_doc(server, flow_id)["schedule"] == {"cron": "0 9 * * 1-5",
                                                     "timezone": "Europe/Paris"}
    assert "Weekdays" in client.get(good.headers["location"]).text


def test_enable_and_run_are_refused_while_unfinished(server: Server, client: httpx.Client,
                                                     shop: dict[str, Any]) -> None:  # noqa: F811
    flow_id = new_flow(client, shop)
    enabled = post(client, f"/flows/{flow_id}/enable")
    assert enabled.status_code == 409
    assert "is not finished: add a source (export) and a destination (import)" in enabled.text
    run = post(client, f"/flows/{flow_id}/run", {"fresh_message_ids": "true"})
    assert run.status_code == 409 and "before you run it" in run.text
    assert server.api.get(f"/api/v1/flows/{flow_id}").json()["enabled"] is False
    renamed = post(client, f"/flows/{flow_id}/rename", {"name": "Orders v2"})
    assert renamed.status_code == 303
    assert flow_doc(server, flow_id)["name"] == "Orders v2"


def test_a_complete_flow_runs_and_its_destination_is_edited(
        server: Server, client: httpx.Client, shop: dict[str, Any],  # noqa: F811
        tmp_path: Path) -> None:
    connection = server.new_connection("Segment", server.create_source("Builder")["write_key"])
    doc = track_flow("Orders", write_csv(tmp_path / "o.csv", orders(3)), "Segment")
    flow_id = server.api.post("/api/v1/flows/import",
                              content=yaml.safe_dump(doc)).json()["id"]
    page = client.get(f"/flows/{flow_id}")
    assert f'href="/flows/{flow_id}/imports/0/mapping"' in page.text

    pane = client.get(f"/flows/{flow_id}/imports/new", params={"connection": connection["id"],
                                                                "name": "More", "call": "page"})
    assert f'<option value="{connection["id"]}" selected>' in pane.text
    assert 'id="call-page" name="call" value="page" checked' in pane.text
    assert f'action="/flows/{flow_id}/imports/new/mapping"' in pane.text
    create = client.get(f"/flows/{flow_id}/imports/new/connection",
                         params={"name": "More", "call": "page"}, headers={"HX-Request": "true"})
    location = create.headers["HX-Location"]
    assert "/connections/new/segment?return_to=%2Fflows%2F" in location
    assert "name%3DMore%26call%3Dpage" in location and '"target": "#pane-host"' in location

    renamed = post(client, f"/flows/{flow_id}/imports/0",
                   {"name": "Orders 2", "connection": "Segment"}, headers=PANE)
    assert renamed.status_code == 200, renamed.text
    assert flow_doc(server, flow_id)["imports"][0]["name"] == "Orders 2"
    bad = post(client, f"/flows/{flow_id}/imports/0", {"name": "Orders 2", "connection": "Nope"},
               headers=PANE)
    assert bad.status_code == 422 and 'id="field-connection-error" class="field-error">' \
        "No connection named" in bad.text

    run = post(client, f"/flows/{flow_id}/run", {"fresh_message_ids": "true"})
    assert run.status_code == 303 and run.headers["location"].startswith("/runs/run_")
    assert server.api.get(run.headers["location"].replace("/runs", "/api/v1/runs")).json()[
        "fresh_message_ids"] is True

    disabled = post(client, f"/flows/{flow_id}/disable")
    assert disabled.status_code == 303
    removed = post(client, f"/flows/{flow_id}/imports/0/delete",
                   headers={"HX-Request": "true"})
    assert removed.status_code == 204 and removed.headers["HX-Redirect"] == \
        f"/flows/{flow_id}?done=removed"
    assert flow_doc(server, flow_id)["imports"] == []


def test_yaml_download_and_import(server: Server, client: httpx.Client,
                                  shop: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    server.new_connection("Segment", server.create_source("Builder 2")["write_key"])
    doc = track_flow("Orders", write_csv(tmp_path / "o.csv", orders(3)), "Segment")
    flow_id = server.api.post("/api/v1/flows", json=doc).json()["id"]

    download = client.get(f"/flows/{flow_id}/flow.yaml")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/yaml")
    assert download.headers["content-disposition"] == 'attachment; filename="Orders.yaml"'
    written = yaml.safe_load(download.text)
    assert written["name"] == "Orders" and "connection_id" not in str(written)
    assert "name: Orders" in client.get(f"/flows/{flow_id}/yaml", headers=PANE).text

    written["steps"] = [{"filter": {"expression": "total > 1"}}]
    replaced = post(client, f"/flows/{flow_id}/yaml",
                    files={"file": ("flow.yaml", yaml.safe_dump(written), "text/yaml")})
    assert replaced.status_code == 303
    assert replaced.headers["location"] == f"/flows/{flow_id}?done=imported"
    assert flow_doc(server, flow_id)["steps"] == written["steps"]

    broken = {**written, "imports": [{**written["imports"][0], "call": "shout"}]}
    refused = post(client, f"/flows/{flow_id}/yaml",
                   files={"file": ("flow.yaml", yaml.safe_dump(broken), "text/yaml")},
                   headers=PANE)
    assert refused.status_code == 422 and "<code>imports.0.call</code>" in refused.text
    assert flow_doc(server, flow_id)["imports"][0]["call"] == "track"

    other = {**written, "name": "Orders copy"}
    created = post(client, "/flows/import",
                   files={"file": ("copy.yaml", yaml.safe_dump(other), "text/yaml")})
    assert created.status_code == 303 and created.headers["location"] != f"/flows/{flow_id}"
    listing = client.get("/flows").text
    assert "Orders copy" in listing and ">Orders</a>" in listing
    nothing = post(client, "/flows/import", files={"file": ("x.yaml", b"name: [", "text/yaml")})
    assert nothing.status_code == 422 and "<code>yaml</code>" in nothing.text

    deleted = post(client, f"/flows/{flow_id}/delete")
    assert deleted.status_code == 303 and deleted.headers["location"].startswith("/flows?")
    assert server.api.get(f"/api/v1/flows/{flow_id}").status_code == 404


def test_a_monitor_sees_the_builder_read_only(server: Server, client: httpx.Client,
                                              shop: dict[str, Any]) -> None:  # noqa: F811
    flow_id = new_flow(client, shop)
    with server.runtime.db.session() as session:
        account = accounts.find_user(session, ADMIN_EMAIL).account_id
        accounts.create_user(session, account, "watcher@example.com", None, role="monitor")
    token = session_for(server, "watcher@example.com")
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30,
                      cookies={SESSION_COOKIE: token}) as monitor:
        monitor.headers["X-CSRF-Token"] = csrf_token_for(token)
        page = monitor.get(f"/flows/{flow_id}")
        assert page.status_code == 200 and 'id="read-only-note"' in page.text
        for button in ("run-now", "enable-toggle", "delete-flow", "add-destination",
                       "rename-form"):
            assert f'id="{button}"' not in page.text
        assert 'id="save-schedule"' not in monitor.get(f"/flows/{flow_id}/schedule").text
        assert 'id="create-flow"' not in monitor.get("/flows").text
        for path, data in ((f"/flows/{flow_id}/run", {}), (f"/flows/{flow_id}/enable", {}),
                           (f"/flows/{flow_id}/delete", {}),
                           (f"/flows/{flow_id}/steps", {"expression": "1 == 1"}),
                           (f"/flows/{flow_id}/schedule", {"schedule.cron": "0 * * * *"}),
                           ("/flows", {"name": "x", "integration": shop["id"]})):
            assert post(monitor, path, data).status_code == 403, path
        assert monitor.get(f"/flows/new?integration={shop['id']}").status_code == 403
    assert server.api.get(f"/api/v1/flows/{flow_id}").status_code == 200

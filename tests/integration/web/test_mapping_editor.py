"""The mapping editor through a browser session: the fields per call type, the live preview
(calls, a record's error, an expression error at its position), saving a new or changed
import, a refused save that changes nothing, and a monitor's 403."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from segbridge.accounts import service as accounts
from segbridge.runtime import ADMIN_EMAIL
from tests.integration.conftest import Server
from tests.integration.flows.conftest import orders, track_flow, write_csv
from tests.support.browser_session import browser


def post(client: httpx.Client, path: str, data: dict[str, str], *,
         htmx: bool = False) -> httpx.Response:
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(path, data={"csrf_token": client.headers["X-Test-Csrf"], **data},
                       headers=headers)


@pytest.fixture
def flow(server: Server, source: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A CSV flow of 6 orders (the third without a customer) with one track import."""
    server.new_connection("Segment - shop", source["write_key"])
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    rows = orders(6)
    rows[2]["customer_id"] = ""
    doc = track_flow("Orders", write_csv(tmp_path / "orders.csv", rows), "Segment - shop")
    response = server.api.post("/api/v1/flows", json=doc)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def editor_fields(call: str, **fields: str) -> dict[str, str]:
    """The posted form of a new import: every field not mapped unless given as kind:value."""
    data = {"name": "Signups", "connection": "Segment - shop", "call": call, "limit": "5"}
    for key, spec in fields.items():
        kind, _, value = spec.partition(":")
        data[f"f.{key}.kind"], data[f"f.{key}.value"] = kind, value
    return data


def definition(server: Server, flow_id: str) -> dict[str, Any]:
    body: dict[str, Any] = server.api.get(f"/api/v1/flows/{flow_id}").json()["definition"]
    return body


@pytest.mark.parametrize(("call", "shown", "required"), [
    ("track", ["userId", "anonymousId", "event", "timestamp"],
     {"userId": "required: this or anonymousId", "event": "required"}),
    ("identify", ["userId", "anonymousId", "timestamp"],
     {"anonymousId": "required: this or userId"}),
    ("group", ["userId", "anonymousId", "groupId", "timestamp"], {"groupId": "required"}),
    ("page", ["userId", "anonymousId", "name", "category", "timestamp"], {}),
    ("alias", ["previousId", "userId", "timestamp"],
     {"previousId": "required", "userId": "required"}),
])
def test_the_editor_shows_the_fields_of_each_call_type(
    server: Server, flow: dict[str, Any], call: str, shown: list[str],
    required: dict[str, str],
) -> None:
    with browser(server) as me:
        page = me.get(f"/flows/{flow['id']}/imports/new/mapping",
                      params={"name": "New", "connection": "Segment - shop", "call": call})
    assert page.status_code == 200, page.text
    keys = re.findall(r'<span class="map-key" id="field-f-(\w+)-label">', page.text)
    assert keys == [*shown, "integrations"]
    for key, need in required.items():
        head = re.search(rf'id="field-f-{key}-label">{key}</span>\s*<span class="required">'
                         rf'\(([^)]*)\)', page.text)
        assert head is not None and head.group(1) == need, key
    payload = {"track": "properties", "page": "properties", "identify": "traits",
               "group": "traits", "alias": None}[call]
    assert ('id="payload-heading">' + str(payload)) in page.text if payload else \
        'id="payload-heading"' not in page.text
    # the sample records' field paths feed the field picker
    assert '<option value="customer_id">' in page.text
    assert f'href="/flows/{flow["id"]}"' in page.text  # breadcrumb and Cancel


def test_an_existing_import_opens_in_the_form_with_its_mapping_and_preview(
    server: Server, flow: dict[str, Any],
) -> None:
    with browser(server) as me:
        page = me.get(f"/flows/{flow['id']}/imports/0/mapping").text
    assert 'name="f.userId.value" value="customer_id"' in page
    assert re.search(r'name="f.event.kind"[^>]*>\s*<option value="field">Field</option>\s*'
                     r'<option value="constant" selected>', page)
    assert 'name="p.1.name" value="total"' in page
    assert 'name="mode" value="yaml" data-yaml-mode>' in page  # form mode: not ticked
    assert '"event": "Order Completed"' in html.unescape(page)  # the preview's call
    assert page.count('<li class="preview-record') == 5


def test_the_preview_shows_the_calls_a_records_error_and_problems_at_their_fields(
    server: Server, flow: dict[str, Any],
) -> None:
    url = f"/flows/{flow['id']}/imports/new/mapping/preview"
    with browser(server) as me:
        good = post(me, url, editor_fields("track", userId="field:customer_id",
                                           event="constant:Signed Up"), htmx=True)
        assert good.status_code == 200, good.text
        region = good.text
        assert region.startswith('<div id="mapping-preview"')
        assert html.unescape(region).count('"event": "Signed Up"') == 4  # the 3rd: no userId
        third = region[region.index('id="preview-record-2"'):]
        assert "1 error" in third[:400]
        assert "<code>userId</code>" in third and "missing or empty" in third
        assert '<div id="field-f-event-error" class="slot-error" data-slot="f.event" ' \
               'hx-swap-oob="true">' in region

        missing = post(me, url, editor_fields("track", userId="field:customer_id"),
                       htmx=True).text
        event_error = re.search(r'id="field-f-event-error"[^>]*>\s*<p class="field-error">'
                                r"([^<]*)</p>", missing)
        assert event_error is not None
        assert event_error.group(1).startswith("Track calls need event")
        assert "Fix the mapping's problems" in missing
        assert '"customer_id"' in html.unescape(missing)  # the records are still shown
        nothing = definition(server, flow["id"])
        assert len(nothing["imports"]) == 1  # a preview saves nothing


def test_an_expression_error_is_shown_at_its_position(server: Server,
                                                     flow: dict[str, Any]) -> None:
    with browser(server) as me:
        answer = post(me, f"/flows/{flow['id']}/imports/new/mapping/preview",
                      editor_fields("track", userId="expression:lower(customer_id) +* 2",
                                    event="constant:Signed Up"), htmx=True).text
    block = re.search(r'id="field-f-userId-error"[^>]*>(.*?)</div>', answer, re.DOTALL)
    assert block is not None
    text = block.group(1)
    assert "Syntax error" in text and "column 21" in text
    marker = re.search(r'<pre class="expr-marker" aria-hidden="true"><code>(.*)\n(.*)</code>',
                       text)
    assert marker is not None
    assert marker.group(1) == "lower(customer_id) +* 2"
    assert marker.group(2) == " " * 20 + "^"


def test_saving_a_new_import_adds_it_to_the_flow(server: Server,
                                                flow: dict[str, Any]) -> None:
    data = editor_fields("identify", userId="field:customer_id")
    data |= {"f.timestamp.kind": "field", "f.timestamp.value": "created_at",
             "f.timestamp.format": "iso", "p.0.name": "spent", "p.0.kind": "field",
             "p.0.value": "total", "p.1.name": "", "p.1.kind": "field", "p.1.value": "",
             "p.all_other_fields": "on", "p.exclude": "order_id, currency"}
    with browser(server) as me:
        saved = post(me, f"/flows/{flow['id']}/imports/new/mapping", data)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/flows/{flow['id']}"
    imports = definition(server, flow["id"])["imports"]
    assert imports[1] == {
        "name": "Signups", "connection": "Segment - shop", "call": "identify",
        "mapping": {"userId": "customer_id",
                    "timestamp": {"field": "created_at", "format": "iso"},
                    "traits": {"fields": {"spent": "total"}, "all_other_fields": True,
                               "exclude": ["order_id", "currency"]}}}


def test_a_save_with_a_missing_required_field_is_refused_and_changes_nothing(
    server: Server, flow: dict[str, Any],
) -> None:
    before = definition(server, flow["id"])
    data = editor_fields("track", userId="field:customer_id") | {"name": "Orders"}
    with browser(server) as me:
        refused = post(me, f"/flows/{flow['id']}/imports/0/mapping", data)
    assert refused.status_code == 422
    assert re.search(r'id="field-f-event-error"[^>]*>\s*<p class="field-error">Track calls '
                     r"need event", refused.text)
    assert 'name="f.event.value" value=""' in refused.text
    assert definition(server, flow["id"]) == before


def test_a_mapping_the_form_cannot_show_opens_as_yaml(server: Server,
                                                    flow: dict[str, Any]) -> None:
    doc = definition(server, flow["id"])
    doc["imports"][0]["mapping"]["properties"] = {
        "fields": {"page": {"fields": {"url": "order_id"}}}}
    assert server.api.put(f"/api/v1/flows/{flow['id']}", json=doc).status_code == 200
    with browser(server) as me:
        page = me.get(f"/flows/{flow['id']}/imports/0/mapping").text
        assert 'data-yaml-mode checked>' in page
        assert '<fieldset id="mapping-fields" class="map-fields" disabled>' in page
        assert "url: order_id" in page
        yaml_text = re.search(r'<textarea id="field-yaml"[^>]*>(.*?)</textarea>', page,
                              re.DOTALL)
        assert yaml_text is not None
        saved = post(me, f"/flows/{flow['id']}/imports/0/mapping",
                     {"name": "Orders", "connection": "Segment - shop", "call": "track",
                      "mode": "yaml", "yaml": yaml_text.group(1).replace("&#39;", "'")})
    assert saved.status_code == 303, saved.text
    assert definition(server, flow["id"]) == doc


def test_a_monitor_may_not_open_the_editor(server: Server, flow: dict[str, Any]) -> None:
    with server.runtime.db.session() as session:
        account = accounts.find_user(session, ADMIN_EMAIL).account_id
        accounts.create_user(session, account, "mo@example.com", None, role="monitor")
    with browser(server, "mo@example.com") as monitor:
        refused = monitor.get(f"/flows/{flow['id']}/imports/0/mapping")
        assert refused.status_code == 403
        assert "Not allowed for your role" in refused.text
        saved = post(monitor, f"/flows/{flow['id']}/imports/0/mapping",
                     editor_fields("track", userId="field:customer_id"))
        assert saved.status_code == 403


def test_an_unknown_flow_or_import_is_a_404(server: Server, flow: dict[str, Any]) -> None:
    with browser(server) as me:
        assert me.get(f"/flows/{flow['id']}/imports/7/mapping").status_code == 404
        assert me.get("/flows/flw_nope/imports/new/mapping").status_code == 404


def test_the_preview_refreshes_the_yaml_and_a_call_type_change_refreshes_the_fields(
    server: Server, flow: dict[str, Any],
) -> None:
    base = f"/flows/{flow['id']}/imports/new/mapping"
    with browser(server) as me:
        answer = post(me, f"{base}/preview",
                      editor_fields("track", userId="field:customer_id",
                                    event="constant:Signed Up"), htmx=True).text
        assert re.search(r'<textarea id="field-yaml"[^>]*hx-swap-oob="true">userId: '
                         r"customer_id\nevent:\n  constant: Signed Up\n</textarea>", answer)
        fields = post(me, f"{base}/form",
                      editor_fields("group", userId="field:customer_id",
                                    event="constant:Signed Up"), htmx=True)
    assert fields.status_code == 200
    assert fields.text.startswith('<fieldset id="mapping-fields"')
    assert 'name="f.userId.value" value="customer_id"' in fields.text  # kept
    assert 'name="f.groupId.kind"' in fields.text and 'name="f.event.kind"' not in fields.text
    assert '<div id="mapping-preview" class="mapping-preview" aria-live="polite" ' \
           'aria-busy="false" hx-swap-oob="true">' in fields.text
    assert "Group calls need groupId" in fields.text


def test_the_first_destination_of_an_unfinished_flow(server: Server, source: dict[str, Any],
                                                      tmp_path: Path) -> None:
    """The builder's path: a flow with a source and no import yet gets its first one; a flow
    with no source says to add one first."""
    server.new_connection("Segment - shop", source["write_key"])
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    with server.runtime.db.session() as session:
        admin = accounts.principal_for(accounts.find_user(session, ADMIN_EMAIL), via="test")
    export = {"type": "csv", "path": str(write_csv(tmp_path / "o.csv", orders(3)))}
    flows = server.runtime.flows
    draft = flows.create(admin, {"name": "Draft", "integration": "Shop", "export": export},
                         unfinished=True)
    empty = flows.create(admin, {"name": "Empty", "integration": "Shop"}, unfinished=True)
    new = "/imports/new/mapping?connection=Segment%20-%20shop&call=track"
    with browser(server) as me:
        page = me.get(f"/flows/{draft.id}{new}")
        assert page.status_code == 200
        assert 'name="name" value="Segment"' in page.text
        assert page.text.count('<li class="preview-record') == 3
        no_source = me.get(f"/flows/{empty.id}{new}")
        assert no_source.status_code == 200
        assert "Add a source to preview its records." in no_source.text
        saved = post(me, f"/flows/{draft.id}/imports/new/mapping",
                     editor_fields("track", userId="field:customer_id", event="field:currency"))
    assert saved.status_code == 303, saved.text
    flow = flows.get(admin, draft.id)
    assert flow.missing == []
    assert flow.definition.as_written()["imports"] == [
        {"name": "Signups", "connection": "Segment - shop", "call": "track",
         "mapping": {"userId": "customer_id", "event": "currency"}}]

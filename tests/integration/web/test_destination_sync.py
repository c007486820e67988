"""A destination's sync in the flow builder: the pane chooses every record, new or changed
records, or new records only (the service's rule about the key field shown at the choice),
and a destination that compares records can forget what it sent so the next run sends
everything again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (  # noqa: F401
    Receiver,
    orders,
    receiver,
    segment_connection,
    shop,
    track_flow,
    wait_for_run,
    workers,
    write_csv,
)
from tests.integration.web.test_flow_builder import PANE, flow_doc, post
from tests.support import builder

client = builder.client


def orders_flow(server: Server, local_segment: Receiver, tmp_path: Path,
                **export: Any) -> str:
    segment_connection(server, local_segment)
    doc = track_flow("Orders", write_csv(tmp_path / "o.csv", orders(40)), "Segment", **export)
    made = server.api.post("/api/v1/flows/import", content=yaml.safe_dump(doc))
    assert made.status_code in (200, 201), made.text
    return str(made.json()["id"])


def run(server: Server, flow_id: str) -> dict[str, Any]:
    started = server.api.post(f"/api/v1/flows/{flow_id}/runs")
    assert started.status_code == 202, started.text
    return wait_for_run(server, started.json()["id"])


def test_the_pane_sets_the_sync_and_a_reset_sends_everything_again(
        server: Server, client: httpx.Client, receiver: Receiver,  # noqa: F811
        workers: Workers, shop: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    flow_id = orders_flow(server, receiver, tmp_path)  # key_field: order_id
    pane = client.get(f"/flows/{flow_id}/imports/0", headers=PANE)
    assert 'id="sync-all" aria-describedby="sync-all-help" checked' in pane.text
    assert 'id="reset-snapshot"' not in pane.text  # nothing to forget with every record

    saved = post(client, f"/flows/{flow_id}/imports/0",
                 {"name": "Orders", "connection": "Segment", "sync": "changed"}, headers=PANE)
    assert saved.status_code == 200, saved.text
    assert flow_doc(server, flow_id)["imports"][0]["sync"] == "changed"
    assert 'id="sync-changed" aria-describedby="sync-changed-help" checked' in saved.text
    assert 'id="reset-snapshot"' in saved.text

    assert run(server, flow_id)["counts"]["sent"] == 40
    assert run(server, flow_id)["counts"]["sent"] == 0  # nothing changed
    reset = post(client, f"/flows/{flow_id}/imports/0/snapshot/reset", headers=PANE)
    assert reset.status_code == 200, reset.text
    assert "Forgot 40 sent record(s): the next run sends every record again." in reset.text
    assert run(server, flow_id)["counts"]["sent"] == 40

    back = post(client, f"/flows/{flow_id}/imports/0",
                {"name": "Orders", "connection": "Segment", "sync": "all"}, headers=PANE)
    assert back.status_code == 200
    assert "sync" not in flow_doc(server, flow_id)["imports"][0]  # the default, left out


def test_a_sync_that_needs_a_key_field_is_refused_at_the_choice(
        server: Server, client: httpx.Client, receiver: Receiver,  # noqa: F811
        shop: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    flow_id = orders_flow(server, receiver, tmp_path, key_field=None)
    pane = client.get(f"/flows/{flow_id}/imports/0", headers=PANE)
    assert 'id="sync-key-note"' in pane.text
    refused = post(client, f"/flows/{flow_id}/imports/0",
                   {"name": "Orders", "connection": "Segment", "sync": "new"}, headers=PANE)
    assert refused.status_code == 422
    assert 'id="field-sync-error" class="field-error">' in refused.text
    assert "set the export" in refused.text and "key_field" in refused.text
    assert "sync" not in flow_doc(server, flow_id)["imports"][0]


def test_a_monitor_can_see_the_sync_but_not_reset_it(
        server: Server, client: httpx.Client, receiver: Receiver,  # noqa: F811
        shop: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    flow_id = orders_flow(server, receiver, tmp_path)
    post(client, f"/flows/{flow_id}/imports/0",
         {"name": "Orders", "connection": "Segment", "sync": "new"}, headers=PANE)
    with builder.monitor(server) as watcher:
        pane = watcher.get(f"/flows/{flow_id}/imports/0", headers=PANE)
        assert 'id="sync-new" aria-describedby="sync-new-help" checked disabled' in pane.text
        assert 'id="reset-snapshot"' not in pane.text
        refused = watcher.post(f"/flows/{flow_id}/imports/0/snapshot/reset",
                               data={"csrf_token": watcher.headers["X-CSRF-Token"]})
        assert refused.status_code == 403


def test_the_pane_chooses_a_call_for_deleted_keys(
        server: Server, client: httpx.Client, receiver: Receiver,  # noqa: F811
        shop: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    flow_id = orders_flow(server, receiver, tmp_path)
    url = f"/flows/{flow_id}/imports/0"
    pane = client.get(url, headers=PANE)
    assert 'id="deleted-none" aria-describedby="deleted-none-help" checked' in pane.text

    refused = post(client, url, {"name": "Orders", "connection": "Segment", "sync": "all",
                                 "deleted": "track", "deleted_event": "Order Deleted"},
                   headers=PANE)
    assert refused.status_code == 422
    assert 'id="field-deleted-error" class="field-error">' in refused.text
    assert "set sync: changed (or new)" in refused.text
    assert "deleted" not in flow_doc(server, flow_id)["imports"][0]

    no_event = post(client, url, {"name": "Orders", "connection": "Segment",
                                  "sync": "changed", "deleted": "track", "deleted_event": ""},
                    headers=PANE)
    assert no_event.status_code == 422
    assert 'id="field-deleted_event-error" class="field-error">Name the event' in no_event.text

    saved = post(client, url, {"name": "Orders", "connection": "Segment", "sync": "changed",
                               "deleted": "track", "deleted_event": "Order Deleted"},
                 headers=PANE)
    assert saved.status_code == 200, saved.text
    assert flow_doc(server, flow_id)["imports"][0]["deleted"] == {"call": "track",
                                                                  "event": "Order Deleted"}
    assert 'id="deleted-track" aria-describedby="deleted-track-help" checked' in saved.text
    assert 'value="Order Deleted"' in saved.text

    identify = post(client, url, {"name": "Orders", "connection": "Segment", "sync": "new",
                                  "deleted": "identify", "deleted_event": "Order Deleted"},
                    headers=PANE)
    assert identify.status_code == 200, identify.text
    assert flow_doc(server, flow_id)["imports"][0]["deleted"] == {
        "call": "identify", "traits": {"deleted": True}}

    renamed = post(client, url, {"name": "Orders", "connection": "Segment", "sync": "new"},
                   headers=PANE)  # (a form without the choice keeps the call)
    assert renamed.status_code == 200
    assert flow_doc(server, flow_id)["imports"][0]["deleted"]["call"] == "identify"
    off = post(client, url, {"name": "Orders", "connection": "Segment", "sync": "new",
                             "deleted": ""}, headers=PANE)
    assert off.status_code == 200
    assert "deleted" not in flow_doc(server, flow_id)["imports"][0]

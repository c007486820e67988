"""The runs pages through a browser session (cookie + CSRF token): a flow's runs with Run now,
cancel, and a finished run's record errors resolved, retried with an edited record, refused
with bad JSON (422, nothing changed); a monitor sees no controls and its POSTs are 403."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from segbridge.accounts import service as accounts
from segbridge.flows.views import RunPublic
from segbridge.runtime import ADMIN_EMAIL
from segbridge.web.routes.runs import events_per_second, parse_record
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    orders,
    track_flow,
    wait_for_run,
    workers,  # noqa: F401 - the flows tests' fixture: the run executor
    write_csv,
)
from tests.support.browser_session import browser

MONITOR_EMAIL = "watcher@example.com"


def post(client: httpx.Client, path: str, data: list[tuple[str, str]] | None = None,
         ) -> httpx.Response:
    """A form post; pairs, as a browser sends them (a name may come more than once)."""
    body = urlencode([("csrf_token", client.headers["X-Test-Csrf"]), *(data or [])])
    return client.post(path, content=body,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})


def monitor(server: Server) -> str:
    with server.runtime.db.session() as session:
        admin = accounts.find_user(session, ADMIN_EMAIL)
        accounts.create_user(session, admin.account_id, MONITOR_EMAIL, None, role="monitor")
    return MONITOR_EMAIL


def bad_rows_run(server: Server, source: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A finished run of 10 orders, lines 3 and 5 without a customer (two open errors)."""
    server.new_connection("Segment - shop", source["write_key"])
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    rows = orders(10)
    rows[1]["customer_id"] = ""
    rows[3]["customer_id"] = ""
    doc = track_flow("Orders", write_csv(tmp_path / "orders.csv", rows), "Segment - shop")
    flow = server.api.post("/api/v1/flows", json=doc).json()
    run = server.api.post(f"/api/v1/flows/{flow['id']}/runs").json()
    finished = wait_for_run(server, run["id"])
    assert finished["status"] == "completed_with_errors", finished
    return finished


def open_errors(server: Server, flow_id: str) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = server.api.get(f"/api/v1/flows/{flow_id}/errors").json()
    return errors


@pytest.mark.usefixtures("workers")
def test_resolve_and_retry_with_an_edited_record(server: Server, source: dict[str, Any],
                                                 tmp_path: Path) -> None:
    run = bad_rows_run(server, source, tmp_path)
    flow_id = run["flow_id"]
    first, second = open_errors(server, flow_id)
    assert (first["ref"], second["ref"]) == ("line 3", "line 5")
    with browser(server) as me:
        page = me.get(f"/runs/{run['id']}")
        assert page.status_code == 200
        assert 'id="errors-form"' in page.text and 'id="retry-errors"' in page.text
        assert f'name="data-{first["id"]}"' in page.text
        assert "&#34;customer_id&#34;: &#34;&#34;" in page.text  # the record, pretty JSON
        assert f'href="/flows/{flow_id}"' in page.text
        assert 'id="debugger-link"' in page.text  # the connection sends to this server

        ended = post(me, f"/runs/{run['id']}/cancel")
        assert ended.status_code == 409
        assert ("The run is completed_with_errors; only a queued, running or paused run can be "
                "canceled.") in ended.text
        nothing = post(me, f"/flows/{flow_id}/errors/resolve", [("run_id", run["id"])])
        assert nothing.status_code == 422 and "Select the record errors to resolve" in nothing.text

        edited = {**first["data"], "customer_id": "c-fixed"}
        bad = post(me, f"/flows/{flow_id}/errors/retry",
                   [("run_id", run["id"]), ("error", first["id"]),
                    (f"data-{first['id']}", '{"order_id": "1", "customer_id": }')])
        assert bad.status_code == 422
        assert "Not valid JSON: Expecting value at line 1, column 34. Fix it." in bad.text
        assert 'aria-invalid="true" autofocus' in bad.text
        assert "customer_id&#34;: }" in bad.text  # the user's text is kept
        a_list = post(me, f"/flows/{flow_id}/errors/retry",
                      [("run_id", run["id"]), ("error", first["id"]),
                       (f"data-{first['id']}", "[1, 2]")])
        assert a_list.status_code == 422 and "not a list" in a_list.text
        assert [e["status"] for e in open_errors(server, flow_id)] == ["open", "open"]

        retried = post(me, f"/flows/{flow_id}/errors/retry",
                       [("run_id", run["id"]), ("error", first["id"]),
                        (f"data-{first['id']}", json.dumps(edited, indent=2)),
                        (f"data-{second['id']}", json.dumps(second["data"], indent=2))])
        assert retried.status_code == 303, retried.text
        retry_id = retried.headers["location"].removeprefix("/runs/")
        done = wait_for_run(server, retry_id)
        assert (done["status"], done["trigger"], done["counts"]["sent"]) == ("succeeded",
                                                                             "retry", 1)
        retry_page = me.get(f"/runs/{retry_id}").text
        assert f"Run <code>{retry_id}</code>, retry, a retry of" in retry_page

        resolved = post(me, f"/flows/{flow_id}/errors/resolve",
                        [("error", second["id"])])
        assert resolved.status_code == 303
        assert resolved.headers["location"] == f"/flows/{flow_id}/runs?done=resolved&count=1"
        assert "Resolved 1 record error." in me.get(resolved.headers["location"]).text
        again = post(me, f"/flows/{flow_id}/errors/resolve", [("error", second["id"])])
        assert again.status_code == 409 and "Nothing was changed" in again.text
    assert open_errors(server, flow_id) == []
    events = server.debugger_events(source["id"])
    assert [e["raw"]["properties"]["order_id"] for e in events
            if e["raw"]["userId"] == "c-fixed"] == [edited["order_id"]]


@pytest.mark.usefixtures("workers")
def test_an_edit_of_a_record_that_is_not_chosen_is_refused(server: Server,
                                                           source: dict[str, Any],
                                                           tmp_path: Path) -> None:
    run = bad_rows_run(server, source, tmp_path)
    first, second = open_errors(server, run["flow_id"])
    with browser(server) as me:
        refused = post(me, f"/flows/{run['flow_id']}/errors/retry",
                       [("error", first["id"]),
                        (f"data-{second['id']}", '{"customer_id": "x"}')])
    assert refused.status_code == 422
    assert "Select this record to retry it with your changes." in refused.text
    assert [e["status"] for e in open_errors(server, run["flow_id"])] == ["open", "open"]


def test_run_now_and_cancel(server: Server, source: dict[str, Any], tmp_path: Path) -> None:
    """Without workers the run stays queued: a second Run now is refused; cancel it."""
    server.new_connection("Segment - shop", source["write_key"])
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    doc = track_flow("Orders", write_csv(tmp_path / "orders.csv", orders(5)), "Segment - shop")
    flow = server.api.post("/api/v1/flows", json=doc).json()
    with browser(server) as me:
        page = me.get(f"/flows/{flow['id']}/runs")
        assert page.status_code == 200 and 'id="run-now-button"' in page.text
        assert f'<a href="/flows/{flow["id"]}" id="flow-link">Orders</a>' in page.text
        started = post(me, f"/flows/{flow['id']}/runs", [("fresh_message_ids", "on")])
        assert started.status_code == 303
        run_id = started.headers["location"].removeprefix("/runs/")
        run = server.api.get(f"/api/v1/runs/{run_id}").json()
        assert run["status"] == "queued" and run["fresh_message_ids"] is True
        run_page = me.get(f"/runs/{run_id}").text
        assert 'hx-trigger="every 2s"' in run_page and "Cancel run" in run_page
        busy = post(me, f"/flows/{flow['id']}/runs")
        assert busy.status_code == 409 and "is already running" in busy.text

        canceled = post(me, f"/runs/{run_id}/cancel", [("back", "list")])
        assert canceled.status_code == 303 and canceled.headers["location"] == "/runs?done=canceled"
        assert server.api.get(f"/api/v1/runs/{run_id}").json()["status"] == "canceling"
        no_csrf = me.post(f"/runs/{run_id}/cancel")
        assert no_csrf.status_code == 403


@pytest.mark.usefixtures("workers")
def test_a_monitor_sees_no_controls_and_may_not_post(server: Server, source: dict[str, Any],
                                                     tmp_path: Path) -> None:
    run = bad_rows_run(server, source, tmp_path)
    flow_id = run["flow_id"]
    first, _ = open_errors(server, flow_id)
    with browser(server, monitor(server)) as watcher:
        for path in (f"/runs/{run['id']}", f"/flows/{flow_id}/runs", "/runs"):
            page = watcher.get(path)
            assert page.status_code == 200, path
            for control in ("errors-form", "retry-errors", "run-now-button", "Cancel run",
                            "<textarea"):
                assert control not in page.text, (path, control)
        assert "The record's data is hidden for your role." in page_of(watcher, run["id"])
        assert "order_id&#34;" not in page_of(watcher, run["id"])
        for path, data in ((f"/flows/{flow_id}/errors/resolve", [("error", first["id"])]),
                           (f"/flows/{flow_id}/errors/retry", [("error", first["id"])]),
                           (f"/flows/{flow_id}/runs", []),
                           (f"/runs/{run['id']}/cancel", [])):
            refused = post(watcher, path, data)
            assert refused.status_code == 403, path
            assert "Not allowed for your role" in refused.text
    assert [e["status"] for e in open_errors(server, flow_id)] == ["open", "open"]


def page_of(client: httpx.Client, run_id: str) -> str:
    return client.get(f"/runs/{run_id}").text


def test_parse_record_says_what_to_fix() -> None:
    assert parse_record('{"a": 1}') == {"a": 1}
    assert parse_record("   ").startswith("Enter the record as a JSON object")  # type: ignore[union-attr]
    assert parse_record('"text"') == ("A record is a JSON object in { }, not a string. Enter "
                                      'the record as a JSON object, e.g. {"order_id": "17", '
                                      '"email": "a@b.c"}.')
    assert parse_record("{") == ("Not valid JSON: Expecting property name enclosed in double "
                                 "quotes at line 1, column 2. Fix it.")


def test_the_rate_is_events_sent_per_second() -> None:
    now = datetime(2026, 11, 30, 12, 0, 10, tzinfo=UTC)
    going = RunPublic(id="r", flow_id="f", status="running", trigger="manual",
                      fresh_message_ids=False, counts={"sent": 500}, checkpoint=0,
                      progress=None, message=None, created_at=None,
                      started_at=(now - timedelta(seconds=5)).isoformat(), finished_at=None,
                      duration_seconds=None, retry_of_run=None)
    assert events_per_second(going, now) == 100.0
    ended = going.model_copy(update={"finished_at": now.isoformat(), "duration_seconds": 2.0})
    assert events_per_second(ended, now) == 250.0
    assert events_per_second(going.model_copy(update={"started_at": None}), now) is None

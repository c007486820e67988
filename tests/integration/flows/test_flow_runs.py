"""A CSV flow into the local Segment, through the REST API and the server's run executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    Receiver,
    assert_invariant,
    open_errors,
    orders,
    segment_connection,
    track_flow,
    wait_for_run,
    write_csv,
)


def create_flow(server: Server, doc: dict[str, Any]) -> dict[str, Any]:
    response = server.api.post("/api/v1/flows", json=doc)
    assert response.status_code == 201, response.text
    flow: dict[str, Any] = response.json()
    return flow


def run_flow(server: Server, flow_id: str, **body: Any) -> dict[str, Any]:
    response = server.api.post(f"/api/v1/flows/{flow_id}/runs", json=body or None)
    assert response.status_code == 202, response.text
    return wait_for_run(server, response.json()["id"])


def test_a_csv_flow_delivers_every_record_once_as_track_calls(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    path = write_csv(tmp_path / "orders.csv", orders(3000))
    flow = create_flow(server, track_flow("Orders", path, connection["name"]))

    run = run_flow(server, flow["id"])

    assert run["status"] == "succeeded", run
    assert run["counts"]["exported"] == run["counts"]["sent"] == 3000
    assert_invariant(server, flow["id"], run)
    events = receiver.archived()
    assert len(events) == 3000
    first = next(e for e in events if e["properties"]["order_id"] == "0")
    assert first["type"] == "track" and first["event"] == "Order Completed"
    assert first["userId"] == "c0" and first["properties"]["currency"] == "EUR"
    assert first["originalTimestamp"] == "2026-11-01T10:00:00.000Z"  # created_at, as sent
    assert len({e["messageId"] for e in events}) == 3000
    # registered with the integration, and in use: deleting the connection is refused
    assert server.api.get(f"/api/v1/integrations/{shop['id']}").json()["connections"][0][
        "id"] == connection["id"]
    refused = server.api.delete(f"/api/v1/connections/{connection['id']}")
    assert refused.status_code == 409 and "flow 'Orders'" in refused.text


def test_a_rerun_sends_the_same_message_ids_and_fresh_ids_on_request(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    flow = create_flow(server, track_flow(
        "Orders", write_csv(tmp_path / "o.csv", orders(200)), connection["name"]))
    run_flow(server, flow["id"])
    again = run_flow(server, flow["id"])
    assert again["counts"]["sent"] == 200
    stats = receiver.stats(connection["source_id"])
    assert stats["duplicates"] == 200  # Segment (here: the receiver) deduplicated the re-run
    assert len(receiver.archived()) == 200
    fresh = run_flow(server, flow["id"], fresh_message_ids=True)
    assert fresh["fresh_message_ids"] is True
    assert len(receiver.archived()) == 400


def test_bad_records_become_errors_naming_row_field_and_reason(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    path = tmp_path / "bad.csv"
    big = "x" * 40_000
    path.write_bytes(
        b"order_id,customer_id,total,currency,created_at\n"
        b"1,c1,10.00,EUR,2026-11-01T10:00:00Z\n"
        b"2,,10.00,EUR,2026-11-01T10:00:00Z\n"                      # missing id
        b"3,c3,10.00,EUR,01/11/2026\n"                               # wrong timestamp
        b"4,c4,10.00,EUR,2026-11-01T10:00:00Z,extra\n"               # malformed line
        b"5,c\xff\xfe5,10.00,EUR,2026-11-01T10:00:00Z\n"             # invalid UTF-8
        + f"6,c6,{big},EUR,2026-11-01T10:00:00Z\n".encode()          # a 40 KB record
        + b"7,c7,10.00,EUR,2026-11-01T10:00:00Z\n")
    flow = create_flow(server, track_flow("Orders", path, connection["name"]))

    run = run_flow(server, flow["id"])

    assert run["status"] == "completed_with_errors"
    assert run["counts"]["exported"] == 7 and run["counts"]["sent"] == 2
    assert_invariant(server, flow["id"], run)
    errors = {e["ref"]: e for e in open_errors(server, flow["id"], run["id"])}
    assert set(errors) == {"line 3", "line 4", "line 5", "line 6", "line 7"}
    assert errors["line 3"]["field"] == "userId" and errors["line 3"]["step"] == "map"
    assert errors["line 4"]["field"] == "timestamp"
    assert errors["line 5"]["step"] == "export"
    assert "UTF-8" in errors["line 6"]["reason"]
    assert "32,768 bytes" in errors["line 7"]["reason"]
    assert errors["line 3"]["data"]["order_id"] == "2"  # the record is kept with its error
    assert {e["properties"]["order_id"] for e in receiver.archived()} == {"1", "7"}


def test_errors_can_be_retried_with_edited_data_and_resolved(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(3)
    rows[1]["customer_id"] = ""
    rows[2]["customer_id"] = ""
    flow = create_flow(server, track_flow("Orders", write_csv(tmp_path / "o.csv", rows),
                                          connection["name"]))
    run = run_flow(server, flow["id"])
    first, second = open_errors(server, flow["id"], run["id"])
    edited = {**first["data"], "customer_id": "c-fixed"}
    retry = server.api.post(f"/api/v1/flows/{flow['id']}/errors/retry", json={
        "error_ids": [first["id"]], "edits": {first["id"]: edited}})
    assert retry.status_code == 202
    retried = wait_for_run(server, retry.json()["id"])
    assert retried["status"] == "succeeded" and retried["counts"]["sent"] == 1
    assert retried["progress"] == 1.0  # every chosen error was read
    assert retried["retry_of_run"] == run["id"]  # the errors came from one run: it links back
    assert "c-fixed" in {e["userId"] for e in receiver.archived()}
    resolved = server.api.post(f"/api/v1/flows/{flow['id']}/errors/resolve",
                               json={"error_ids": [second["id"]]})
    assert resolved.json() == {"resolved": 1}
    assert server.api.get(f"/api/v1/flows/{flow['id']}/errors").json() == []


def test_a_flow_never_runs_twice_at_once(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    flow = create_flow(server, track_flow(
        "Orders", write_csv(tmp_path / "o.csv", orders(10)), connection["name"]))
    first = server.api.post(f"/api/v1/flows/{flow['id']}/runs")  # no executor: stays queued
    assert first.status_code == 202 and first.json()["status"] == "queued"
    second = server.api.post(f"/api/v1/flows/{flow['id']}/runs")
    assert second.status_code == 409
    assert "already running" in second.json()["error"]["message"]
    assert server.api.post(f"/api/v1/runs/{first.json()['id']}/cancel").status_code == 200
    again = server.api.post(f"/api/v1/runs/{first.json()['id']}/cancel")
    assert again.status_code == 409 and "being canceled already" in again.text


def test_preview_shows_the_exact_calls_and_sends_nothing(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(5)
    rows[2]["customer_id"] = ""
    flow = create_flow(server, track_flow("Orders", write_csv(tmp_path / "o.csv", rows),
                                          connection["name"]))
    preview = server.api.post(f"/api/v1/flows/{flow['id']}/preview", json={"limit": 3}).json()
    assert preview["sent"] is False
    assert [len(r["calls"]) for r in preview["records"]] == [1, 1, 0]
    call = preview["records"][0]["calls"][0]["call"]
    assert call["type"] == "track" and call["userId"] == "c0"
    assert call["messageId"].startswith("sb-")
    assert preview["records"][2]["errors"][0]["field"] == "userId"
    assert receiver.archived() == []


def test_flows_as_code_round_trip_and_broken_definitions_list_every_problem(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    doc = track_flow("Orders", write_csv(tmp_path / "o.csv", orders(2)), connection["name"])
    doc["schedule"] = {"cron": "0 6 * * *", "timezone": "Europe/Paris"}
    text = yaml.safe_dump(doc)
    created = server.api.post("/api/v1/flows/import", content=text.encode(),
                              headers={"Content-Type": "application/yaml"})
    assert created.status_code == 200, created.text
    flow = created.json()
    assert flow["next_run_at"].endswith(("05:00:00.000Z", "04:00:00.000Z"))  # 06:00 in Paris
    exported = yaml.safe_load(server.api.get(f"/api/v1/flows/{flow['id']}/yaml").text)
    assert exported["imports"][0]["connection"] == connection["name"]
    assert exported["schedule"] == doc["schedule"]

    broken = track_flow("Broken", tmp_path / "o.csv", "No such connection")
    broken["imports"][0]["mapping"] = {"event": {"constant": "x"}, "colour": "red"}
    broken["schedule"] = {"cron": "every hour", "timezone": "Mars/Olympus"}
    response = server.api.post("/api/v1/flows", json=broken)
    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["error"]["details"]}
    assert {"schedule.cron", "schedule.timezone"} <= fields
    assert any(f.startswith("imports.0.mapping") for f in fields)
    assert len(fields) >= 4


def test_filters_ignore_records_and_a_filter_error_fails_only_its_record(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver)
    rows = orders(6)
    rows[1]["currency"] = "USD"
    rows[2]["currency"] = "USD"
    rows[3]["total"] = "not a number"
    doc = track_flow("Orders", write_csv(tmp_path / "o.csv", rows), connection["name"])
    doc["steps"] = [{"filter": {"expression": "currency != 'USD' and float(total) >= 0"}}]
    flow = create_flow(server, doc)
    run = run_flow(server, flow["id"])
    assert run["counts"]["ignored"] == 2 and run["counts"]["sent"] == 3
    assert_invariant(server, flow["id"], run)
    [error] = open_errors(server, flow["id"], run["id"])
    assert (error["ref"], error["step"]) == ("line 5", "filter")
    assert error["data"]["total"] == "not a number"


def test_the_cli_imports_runs_with_progress_and_exports_a_flow(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
) -> None:
    import json

    from click.testing import CliRunner

    from segbridge.cli.main import cli

    connection = segment_connection(server, receiver)
    doc = track_flow("Orders", write_csv(tmp_path / "o.csv", orders(500)), connection["name"])
    flow_file = tmp_path / "orders.yaml"
    flow_file.write_text(yaml.safe_dump(doc))
    settings = server.runtime.settings
    env = {"SEGBRIDGE_HOME": str(settings.home),
           "SEGBRIDGE_DATABASE_URL": settings.resolved_database_url,
           "SEGBRIDGE_FILE_ROOTS": settings.file_roots}
    runner = CliRunner()
    imported = runner.invoke(cli, ["flows", "import", str(flow_file)], env=env, obj={})
    assert imported.exit_code == 0 and "Saved flow 'Orders'" in imported.output
    ran = runner.invoke(cli, ["flows", "run", "Orders", "--follow", "--json"], env=env, obj={})
    assert ran.exit_code == 0, ran.output
    run = json.loads(ran.stdout[ran.stdout.index("{"):])
    assert run["status"] == "succeeded" and run["counts"]["sent"] == 500
    assert "exported 500" in ran.stderr
    assert f"[{'#' * 24}] 100%" in ran.stderr  # a file export: the bar shows the share read
    assert run["progress"] == 1.0
    exported = runner.invoke(cli, ["flows", "export", "Orders"], env=env, obj={})
    assert yaml.safe_load(exported.output)["imports"][0]["call"] == "track"
    assert len(receiver.archived()) == 500


def test_a_connection_lists_the_flows_that_use_it(server: Server, receiver: Receiver,
                                                  shop: dict[str, Any], tmp_path: Path) -> None:
    connection = segment_connection(server, receiver)
    path = write_csv(tmp_path / "orders.csv", orders(1))
    flow = create_flow(server, track_flow("Orders", path, connection["name"]))
    used_by = server.api.get(f"/api/v1/connections/{connection['id']}").json()["used_by"]
    assert used_by == {"borrowers": [], "flows": [{"id": flow["id"], "name": "Orders"}]}
    refused = server.api.delete(f"/api/v1/connections/{connection['id']}")
    assert refused.status_code == 409 and "flow 'Orders' uses it" in refused.text

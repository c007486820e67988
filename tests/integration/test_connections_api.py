"""The Create connection pane's rules, rule by rule, through the REST API of a real server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server

LONG_NAME = "x" * 101


def problems(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return {p["field"]: p["message"] for p in body["error"]["details"]}


def test_save_tests_then_commits_and_the_ping_shows_in_the_debugger(
    server: Server, source: dict[str, Any],
) -> None:
    created = server.new_connection("Segment - production", source["write_key"])

    assert created["application"] == "segment"
    assert created["settings"]["has_write_key"] is True
    assert "write_key" not in created["settings"]
    assert created["status"] == "online"
    assert created["effective_concurrency"]["level"] == 25
    test = created["last_test"]
    assert test["ok"] is True and test["status"] == 200
    assert test["endpoint"] == f"{server.sandbox_url}/v1/identify"
    assert [c["outcome"] for c in test["checks"]] == ["recognised"]
    events = server.debugger_events(source["id"], test["message_id"])
    assert len(events) == 1
    raw = events[0]["raw"]
    assert raw["type"] == "identify"
    assert raw["userId"] == "segbridge-connection-test"
    assert raw["context"]["library"]["name"] == "segbridge"
    listed = server.api.get("/api/v1/connections").json()
    assert [c["name"] for c in listed] == ["Segment - production"]


def test_every_route_needs_a_token(server: Server) -> None:
    response = httpx.get(f"{server.base_url}/api/v1/connections", trust_env=False)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    bad = httpx.get(f"{server.base_url}/api/v1/connections", trust_env=False,
                    headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


@pytest.mark.parametrize(("name", "message"), [
    ("", "enter a name"), ("   ", "enter a name"), (LONG_NAME, "at most 100 characters")])
def test_bad_names_are_refused_and_nothing_is_stored(
    server: Server, source: dict[str, Any], name: str, message: str,
) -> None:
    response = server.api.post("/api/v1/connections", json={
        "name": name, "application": "segment",
        "settings": server.segment_settings(source["write_key"])})
    assert response.status_code == 422
    assert message in problems(response)["name"]
    assert server.api.get("/api/v1/connections").json() == []


def test_names_are_trimmed_and_unique_ignoring_case(
    server: Server, source: dict[str, Any],
) -> None:
    created = server.new_connection("  Production  ", source["write_key"])
    assert created["name"] == "Production"
    again = server.api.post("/api/v1/connections", json={
        "name": "PRODUCTION", "application": "segment",
        "settings": server.segment_settings(source["write_key"])})
    assert again.status_code == 422
    assert "exists already" in problems(again)["name"]
    assert len(server.api.get("/api/v1/connections").json()) == 1


def test_unknown_application_and_unknown_fields_are_named(server: Server) -> None:
    response = server.api.post("/api/v1/connections", json={
        "name": "A", "application": "salesforce", "settings": {"write_key": "k"}})
    assert response.status_code == 422
    assert "unknown application 'salesforce'" in problems(response)["application"]
    extra = server.api.post("/api/v1/connections", json={
        "name": "A", "application": "segment", "settings": {"write_key": "k"}, "colour": "red"})
    assert extra.status_code == 422
    assert "unknown field" in problems(extra)["colour"]
    setting = server.api.post("/api/v1/connections", json={
        "name": "A", "application": "segment", "settings": {"write_key": "k", "token": "t"}})
    assert "unknown setting" in problems(setting)["settings.token"]


def test_malformed_json_gets_a_clear_error(server: Server) -> None:
    response = server.api.post("/api/v1/connections", content=b"{not json",
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert problems(response)["body"].startswith("the body is not valid JSON")


@pytest.mark.parametrize("level", [0, 26, "abc", -1, 2.5])
def test_concurrency_level_must_be_1_to_25(
    server: Server, source: dict[str, Any], level: object,
) -> None:
    response = server.api.post("/api/v1/connections", json={
        "name": "A", "application": "segment", "concurrency_level": level,
        "settings": server.segment_settings(source["write_key"])})
    assert response.status_code == 422
    assert "1 to 25" in problems(response)["concurrency_level"]
    assert server.api.get("/api/v1/connections").json() == []


def test_blank_level_means_25_and_a_level_is_kept(server: Server, source: dict[str, Any]) -> None:
    default = server.new_connection("Default", source["write_key"])
    five = server.new_connection("Five", source["write_key"], concurrency_level=5)
    assert default["concurrency_level"] is None
    assert default["effective_concurrency"]["level"] == 25
    assert five["effective_concurrency"]["level"] == 5


def test_missing_write_key_is_refused(server: Server) -> None:
    response = server.api.post("/api/v1/connections", json={
        "name": "A", "application": "segment", "settings": {"endpoint": server.sandbox_url}})
    assert response.status_code == 422
    assert "enter the write key" in problems(response)["settings.write_key"]


def update_body(connection: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {"name": connection["name"], "application": connection["application"],
            "settings": {"endpoint": connection["settings"]["endpoint"]},
            "concurrency_level": connection["concurrency_level"],
            "borrow_concurrency_from": connection["borrow_concurrency_from"]}
    body.update(changes)
    return body


def test_every_update_needs_the_write_key_again(server: Server, source: dict[str, Any]) -> None:
    connection = server.new_connection("Prod", source["write_key"])
    before = server.api.get(f"/api/v1/connections/{connection['id']}").json()
    response = server.api.put(f"/api/v1/connections/{connection['id']}",
                              json=update_body(connection, name="Renamed"))
    assert response.status_code == 422
    assert "every save needs it again" in problems(response)["settings.write_key"]
    assert server.api.get(f"/api/v1/connections/{connection['id']}").json() == before


@pytest.mark.parametrize("mask", ["********", "••••••••", "****3f9a"])
def test_a_mask_echoed_back_is_refused_never_stored(
    server: Server, source: dict[str, Any], mask: str,
) -> None:
    connection = server.new_connection("Prod", source["write_key"])
    settings = {"endpoint": server.sandbox_url, "write_key": mask}
    response = server.api.put(f"/api/v1/connections/{connection['id']}",
                              json=update_body(connection, settings=settings))
    assert response.status_code == 422
    assert "masked value" in problems(response)["settings.write_key"]
    retest = server.api.post(f"/api/v1/connections/{connection['id']}/test").json()
    assert retest["checks"][0]["outcome"] == "recognised"  # the real key is still stored


def test_an_update_with_the_key_saves_and_records_the_audit(
    server: Server, source: dict[str, Any],
) -> None:
    connection = server.new_connection("Prod", source["write_key"])
    settings = server.segment_settings(source["write_key"])
    response = server.api.put(f"/api/v1/connections/{connection['id']}",
                              json=update_body(connection, name="Prod EU-less",
                                               settings=settings, concurrency_level=3))
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Prod EU-less"
    assert response.json()["effective_concurrency"]["level"] == 3
    audit = server.api.get(f"/api/v1/connections/{connection['id']}/audit").json()
    assert [a["action"] for a in audit] == ["update", "create"]
    assert audit[0]["fields"] == ["concurrency_level", "name", "settings.write_key"]
    assert audit[0]["actor"] == "token:admin@localhost"
    assert source["write_key"] not in str(audit)


def test_the_application_can_never_change(server: Server, source: dict[str, Any]) -> None:
    connection = server.new_connection("Prod", source["write_key"])
    response = server.api.put(f"/api/v1/connections/{connection['id']}", json=update_body(
        connection, application="salesforce",
        settings=server.segment_settings(source["write_key"])))
    assert response.status_code == 422
    assert "cannot be changed" in problems(response)["application"]


def test_a_failed_test_stores_nothing_and_returns_the_result(server: Server) -> None:
    response = server.api.post("/api/v1/connections", json={
        "name": "Broken", "application": "segment",
        "settings": {"write_key": "abcdefghijklmnopqrstuvwxyz123456",
                     "endpoint": f"{server.base_url}/not-segment"}})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "connection_test_failed"
    assert error["details"]["cause"] == "wrong_endpoint"
    assert error["details"]["status"] == 404
    assert server.api.get("/api/v1/connections").json() == []


def test_an_unknown_key_fails_where_the_receiver_knows_every_key(server: Server) -> None:
    """The Local Segment answers 200 to the ping, as Segment does, but its settings endpoint
    says it knows every key of its sources: the API, as the pages, fails the test and Save."""
    settings = {"write_key": "unknownunknownunknownunknown1234", "endpoint": server.sandbox_url}
    result = server.api.post("/api/v1/connections/test", json={
        "application": "segment", "settings": settings}).json()
    assert result["ok"] is False
    assert result["cause"] == "key_unknown"
    assert result["checks"][0]["outcome"] == "unknown"
    assert "knows every key of its sources" in result["message"]
    saved = server.api.post("/api/v1/connections", json={
        "name": "Wrong key", "application": "segment", "settings": settings})
    assert saved.status_code == 422
    assert saved.json()["error"]["details"]["cause"] == "key_unknown"
    assert server.api.get("/api/v1/connections").json() == []


def test_get_and_test_of_a_missing_connection_answer_404(server: Server) -> None:
    for method, path in [("GET", "/api/v1/connections/con_nope"),
                         ("POST", "/api/v1/connections/con_nope/test"),
                         ("DELETE", "/api/v1/connections/con_nope")]:
        response = server.api.request(method, path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_openapi_and_docs_are_served(server: Server) -> None:
    spec = httpx.get(f"{server.base_url}/api/v1/openapi.json", trust_env=False).json()
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"create_connection", "update_connection", "test_connection",
            "test_unsaved_connection", "delete_connection", "list_applications"} <= operations
    public = spec["components"]["schemas"]["ConnectionPublic"]["properties"]
    assert "write_key" not in str(public)
    docs = httpx.get(f"{server.base_url}/api/docs", trust_env=False)
    assert docs.status_code == 200


def test_applications_list_segment_with_its_secret_setting(server: Server) -> None:
    apps = server.api.get("/api/v1/applications").json()
    assert apps[0]["key"] == "segment"
    settings = {s["name"]: s for s in apps[0]["settings"]}
    assert settings["write_key"]["secret"] is True and settings["write_key"]["required"]
    assert "Settings > API keys" in settings["write_key"]["help"]
    assert settings["region"]["advanced"] and settings["endpoint"]["advanced"]
    assert "ping" in apps[0]["capabilities"]

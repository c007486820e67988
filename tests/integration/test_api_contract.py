"""The API contract: the OpenAPI document says how to authenticate and every status an
operation answers, the server answers what the document says, and schemathesis checks both
over the whole document of a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server, admin_token

CONTRACT_CONFIG = Path(__file__).with_name("api_contract.schemathesis.toml")
ERROR_REF = "#/components/schemas/ErrorResponse"
MONITOR_EMAIL = "mo@example.com"


def openapi(server: Server) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/api/v1/openapi.json", trust_env=False)
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def operations(spec: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {op["operationId"]: (path, method, op)
            for path, methods in spec["paths"].items() for method, op in methods.items()}


def test_a_method_the_path_does_not_take_is_405_with_allow_listing_every_method(
    server: Server,
) -> None:
    response = server.api.patch("/api/v1/connections/con_nope")
    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, GET, PUT"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "it takes DELETE, GET, PUT" in response.json()["error"]["message"]
    collection = server.api.delete("/api/v1/connections")
    assert (collection.status_code, collection.headers["Allow"]) == (405, "GET, POST")


def test_a_body_that_is_not_json_is_400_and_wrong_fields_422(server: Server) -> None:
    for content, content_type in [(b"{not json", "application/json"),
                                  (b'{"name": "A"}', "text/plain")]:
        response = server.api.post("/api/v1/integrations", content=content,
                                   headers={"Content-Type": content_type})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "malformed_body"
        assert error["message"].startswith("the body is not valid JSON")
        assert "application/json" in error["message"]
    wrong_fields = server.api.post("/api/v1/integrations", json={"name": "A", "colour": "red"})
    assert wrong_fields.status_code == 422  # JSON, but not what the operation takes
    assert wrong_fields.json()["error"]["code"] == "validation_failed"


def test_openapi_declares_bearer_and_cookie_auth(server: Server) -> None:
    spec = openapi(server)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert (schemes["cookieAuth"]["type"], schemes["cookieAuth"]["in"],
            schemes["cookieAuth"]["name"]) == ("apiKey", "cookie", "segbridge_session")
    assert (schemes["csrfToken"]["in"], schemes["csrfToken"]["name"]) == (
        "header", "X-CSRF-Token")
    ops = operations(spec)
    assert ops["create_connection"][2]["security"] == [
        {"bearerAuth": []}, {"cookieAuth": [], "csrfToken": []}]
    assert ops["list_connections"][2]["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]
    assert ops["login"][2]["security"] == []


def test_openapi_documents_every_error_status_with_the_error_body(server: Server) -> None:
    ops = operations(openapi(server))
    create = ops["create_connection"][2]["responses"]
    assert {"201", "400", "401", "403", "409", "422"} <= set(create)
    assert "404" not in create  # no id in its path
    assert {"401", "403", "404", "409", "422"} <= set(ops["delete_connection"][2]["responses"])
    assert {"400", "401", "422", "429"} <= set(ops["login"][2]["responses"])
    assert "Retry-After" in ops["login"][2]["responses"]["429"]["headers"]
    assert "WWW-Authenticate" in create["401"]["headers"]
    assert "413" in ops["upload_file"][2]["responses"]
    assert "409" not in ops["list_connections"][2]["responses"]  # a read conflicts with nothing
    for operation_id, (_path, _method, op) in ops.items():
        for status, response in op["responses"].items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (operation_id, status)


def test_request_schemas_are_as_strict_as_the_server(server: Server) -> None:
    spec = openapi(server)
    schemas = spec["components"]["schemas"]
    create = schemas["ConnectionCreate"]["properties"]
    assert create["application"]["enum"] == sorted(
        app["key"] for app in server.api.get("/api/v1/applications").json())
    assert (create["name"]["minLength"], create["name"]["maxLength"]) == (1, 100)
    segment = next(branch["properties"]["settings"]
                   for branch in schemas["ConnectionCreate"]["anyOf"]
                   if branch["properties"]["application"] == {"const": "segment"})
    assert segment["required"] == ["write_key"]
    assert set(segment["properties"]) == {"write_key", "region", "endpoint"}
    assert segment["additionalProperties"] is False
    assert schemas["UserInvite"]["properties"]["role"]["enum"] == ["admin", "manage", "monitor"]
    assert schemas["UserInvite"]["properties"]["email"]["pattern"]
    blank = server.api.post("/api/v1/integrations", json={"name": " \u3000 "})
    assert blank.status_code == 422
    assert blank.json()["error"]["details"] == [
        {"field": "name", "message": "enter a name; it cannot be blank"}]
    email = server.api.post("/api/v1/users", json={"email": "ana at example.com"})
    assert email.status_code == 422
    assert "enter an email address like" in email.json()["error"]["message"]


def test_a_name_taken_is_a_409_conflict(server: Server) -> None:
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    again = server.api.post("/api/v1/integrations", json={"name": "shop"})
    assert again.status_code == 409
    assert again.json()["error"]["details"] == {"field": "name"}


def test_times_are_answered_with_their_utc_offset(server: Server) -> None:
    created = server.api.get("/api/v1/users").json()[0]["created_at"]
    assert datetime.fromisoformat(created).utcoffset() == timedelta(0), created


def test_text_with_a_nul_character_is_refused_with_a_422_naming_the_field(
    server: Server,
) -> None:
    """PostgreSQL cannot store a NUL: it was a 500 there (and stored silently by SQLite)."""
    answers = {
        "name": server.api.post("/api/v1/integrations", json={"name": "Shop\u0000"}),
        "connection_id": server.api.get("/api/v1/connections/con_a%00b"),
        "email": server.api.post("/api/v1/auth/login",
                                 json={"email": "ana\u0000@example.com", "password": "x"}),
        "status": server.api.get("/api/v1/flows/flw_x/errors", params={"status": "open\x00"}),
    }
    for field, response in answers.items():
        assert response.status_code == 422, (field, response.text)
        assert response.json()["error"]["details"] == [
            {"field": field, "message": "remove the NUL character (\\u0000); segbridge does "
                                        "not store it"}]
    assert server.api.get("/api/v1/integrations").json() == []


def seed_objects(server: Server, folder: Path) -> dict[str, str]:
    """One object of each kind, so the run reaches the services behind the ids (it fixes
    the path ids to these) instead of answering 404s: a connection to the local Segment,
    an integration, a flow reading a CSV file of the file root, a run, a second user and a
    second API token (not the one the run signs in with)."""
    source = server.create_source()
    connection = server.new_connection("Segment", source["write_key"])
    integration = server.api.post("/api/v1/integrations", json={"name": "Shop"}).json()
    orders = folder / "orders.csv"
    orders.write_text("order_id,customer_id,total\n1,c1,9.50\n2,c2,abc\n")
    flow = server.api.post("/api/v1/flows", json={
        "name": "Orders", "integration": "Shop",
        "export": {"type": "csv", "path": str(orders), "key_field": "order_id"},
        "imports": [{"name": "Orders", "connection": connection["id"], "call": "track",
                     "mapping": {"userId": "customer_id",
                                 "event": {"constant": "Order Completed"},
                                 "properties": {"fields": {"total": "total"}}}}]})
    assert flow.status_code == 201, flow.text
    run = server.api.post(f"/api/v1/flows/{flow.json()['id']}/runs")
    assert run.status_code == 202, run.text
    user = server.api.post("/api/v1/users", json={"email": MONITOR_EMAIL, "role": "monitor"})
    assert user.status_code == 201, user.text
    token = server.api.post("/api/v1/tokens", json={"name": "spare"})
    assert token.status_code == 201, token.text
    return {"CONTRACT_CONNECTION_ID": connection["id"],
            "CONTRACT_INTEGRATION_ID": integration["id"],
            "CONTRACT_FLOW_ID": flow.json()["id"], "CONTRACT_RUN_ID": run.json()["id"],
            "CONTRACT_USER_ID": user.json()["user"]["id"],
            "CONTRACT_TOKEN_ID": token.json()["id"]}


def run_schemathesis(server: Server, folder: Path, caller: str | None = None) -> None:
    """Every check schemathesis has, over the whole document (bounded: a few examples per
    operation, deterministic); see api_contract.schemathesis.toml for what is excluded."""
    seeded = seed_objects(server, folder)
    token = admin_token(server.runtime, caller) if caller else server.token
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONTRACT_CONFIG),
         "--no-color", "run", f"{server.base_url}/api/v1/openapi.json",
         "-H", f"Authorization: Bearer {token}"],
        capture_output=True, text=True, timeout=600, cwd=folder,
        env={**os.environ, **seeded, "NO_COLOR": "1"}, check=False)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5000:]
    documented = sum(len(methods) for methods in openapi(server)["paths"].values())
    assert f"Tested: {documented}\n" in run.stdout, run.stdout[-3000:]
    assert elapsed < 300, f"the contract run took {elapsed:.0f} s; lower max-examples"


def test_schemathesis_finds_no_server_error_and_no_contract_violation(
    server: Server, tmp_path: Path,
) -> None:
    run_schemathesis(server, tmp_path)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_schemathesis_as_a_monitor_finds_every_refusal_documented(
    server: Server, tmp_path: Path,
) -> None:
    """The same run as a user with the monitor role: every 403 it meets is documented."""
    run_schemathesis(server, tmp_path, caller=MONITOR_EMAIL)

"""The workspace: sources with write keys, managed through the JSON API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from segbridge.sandbox import SandboxConfig, SourceStore, create_sandbox_app, ensure_default_source

from .conftest import Sandbox, SandboxFactory, basic

pytestmark = pytest.mark.integration


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert "details" in error
    return error


def test_create_list_get_rename_delete(sandbox: Sandbox) -> None:
    created = sandbox.admin.post("/api/sources", json={"name": "  Website  "})
    assert created.status_code == 201
    source = created.json()
    assert source["name"] == "Website"
    assert len(source["write_key"]) == 32 and source["write_key"].isalnum()
    assert source in sandbox.admin.get("/api/sources").json()["sources"]
    assert sandbox.admin.get(f"/api/sources/{source['id']}").json() == source
    renamed = sandbox.admin.patch(f"/api/sources/{source['id']}", json={"name": "Web shop"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Web shop"
    assert renamed.json()["write_key"] == source["write_key"]
    assert sandbox.admin.delete(f"/api/sources/{source['id']}").status_code == 204
    _error(sandbox.admin.get(f"/api/sources/{source['id']}"), 404, "not_found")


def test_every_source_gets_its_own_key(sandbox: Sandbox) -> None:
    keys = {sandbox.new_source()["write_key"] for _ in range(20)}
    assert len(keys) == 20


def test_a_deleted_sources_key_becomes_unknown(sandbox: Sandbox) -> None:
    source = sandbox.new_source()
    sandbox.admin.delete(f"/api/sources/{source['id']}")
    call = {"userId": "u", "event": "E"}
    assert (
        sandbox.http.post("/v1/track", json=call, headers=basic(source["write_key"])).status_code
        == 200
    )
    assert sandbox.http.get(f"/v1/projects/{source['write_key']}/settings").status_code == 404


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * 101, 42, None, ["a"]],
    ids=["empty", "blank", "too-long", "number", "null", "list"],
)
def test_bad_names_are_422(sandbox: Sandbox, name: object) -> None:
    error = _error(sandbox.admin.post("/api/sources", json={"name": name}), 422, "invalid_name")
    assert error["details"] == {"field": "name"}


def test_names_are_unique_ignoring_case(sandbox: Sandbox) -> None:
    first = sandbox.new_source("Mobile App")
    _error(sandbox.admin.post("/api/sources", json={"name": "mobile app "}), 422, "invalid_name")
    other = sandbox.new_source("Backend")
    _error(
        sandbox.admin.patch(f"/api/sources/{other['id']}", json={"name": "MOBILE APP"}),
        422,
        "invalid_name",
    )
    # Changing the case of one's own name is fine.
    assert (
        sandbox.admin.patch(f"/api/sources/{first['id']}", json={"name": "Mobile app"}).status_code
        == 200
    )


def test_a_100_character_name_is_fine(sandbox: Sandbox) -> None:
    assert sandbox.admin.post("/api/sources", json={"name": "n" * 100}).status_code == 201


def test_bad_bodies(sandbox: Sandbox) -> None:
    _error(sandbox.admin.post("/api/sources", content=b"{nope"), 400, "invalid_json")
    _error(sandbox.admin.post("/api/sources", json=["name"]), 422, "invalid_body")
    _error(sandbox.admin.patch("/api/sources/src_missing", json={"name": "x"}), 404, "not_found")
    _error(sandbox.admin.delete("/api/sources/src_missing"), 404, "not_found")


def test_management_needs_the_admin_token(sandbox: Sandbox) -> None:
    for method, path in (
        ("GET", "/api/sources"),
        ("POST", "/api/sources"),
        ("GET", "/api/receiver"),
    ):
        _error(sandbox.http.request(method, path, json={"name": "x"}), 401, "unauthorized")
        wrong = {"Authorization": "Bearer not-the-token-at-all"}
        _error(
            sandbox.http.request(method, path, json={"name": "x"}, headers=wrong),
            401,
            "unauthorized",
        )


def test_no_admin_token_means_no_management(make_sandbox: SandboxFactory) -> None:
    closed = make_sandbox(admin_token=None)
    _error(closed.http.get("/api/sources"), 403, "forbidden")
    _error(
        closed.http.get("/api/sources", headers={"Authorization": "Bearer anything"}),
        403,
        "forbidden",
    )


def test_callbacks_decide_when_mounted(make_sandbox: SandboxFactory) -> None:
    def allowed(request: Any) -> bool:
        return bool(request.headers.get("x-user") == "alice")

    guarded = make_sandbox(
        admin_token=None, authorize_manage=allowed, authorize_admin=lambda r: False
    )
    _error(guarded.http.get("/api/sources"), 403, "forbidden")
    assert guarded.http.get("/api/sources", headers={"x-user": "alice"}).status_code == 200
    _error(guarded.http.get("/api/faults", headers={"x-user": "alice"}), 403, "forbidden")


def test_receiver_counters(sandbox: Sandbox) -> None:
    before = sandbox.admin.get("/api/receiver").json()
    sandbox.http.post("/v1/track", json={"userId": "u", "event": "E"})
    after = sandbox.admin.get("/api/receiver").json()
    assert after["mode"] == "segment"
    assert after["missing_key_requests"] == before["missing_key_requests"] + 1
    sandbox.http.post("/v1/track", content=b"{", headers={"Authorization": "Basic eA=="})
    final = sandbox.admin.get("/api/receiver").json()
    assert final["rejected_requests"] == before["rejected_requests"] + 1


def test_sources_survive_a_restart_with_a_state_file(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    state = tmp_path / "sandbox.sqlite"
    first = make_sandbox(state_path=state)
    source = first.new_source("Persistent")
    second = make_sandbox(state_path=state)
    assert second.admin.get(f"/api/sources/{source['id']}").json() == source
    call = {"userId": "u", "event": "E"}
    assert (
        second.http.post("/v1/track", json=call, headers=basic(source["write_key"])).status_code
        == 200
    )
    assert second.stats(source["id"])["accepted"] == 1


def test_ensure_default_source_creates_one_once(tmp_path: Path) -> None:
    app = create_sandbox_app(SandboxConfig(state_path=tmp_path / "s.sqlite"))
    first = ensure_default_source(app)
    assert first.name == "My first source"
    assert ensure_default_source(app) == first
    assert ensure_default_source(app.state.sandbox) == first
    app.state.sandbox.close()
    store = SourceStore(tmp_path / "s.sqlite")
    assert ensure_default_source(store) == first
    store.close()

"""Borrow concurrency from: same account, same application, never itself, no cycles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from segbridge.accounts import service as accounts
from segbridge.apps.base import Capability, ConnectionConfig, PingResult, SettingKind, SettingSpec
from segbridge.core.access import Targets
from segbridge.core.errors import FieldProblem
from tests.integration.conftest import Server
from tests.integration.test_connections_api import problems, update_body


class EchoApplication:
    """A second application, so 'borrow only from the same application' can be tested."""

    key = "echo"
    name = "Echo"
    description = "answers every ping"
    capabilities = frozenset({Capability.PING})
    settings = (SettingSpec("token", "Token", SettingKind.SECRET, required=True),)

    def validate(self, values: Mapping[str, str | None]) -> list[FieldProblem]:
        return []

    def targets(self, values: Mapping[str, str | None]) -> Targets:
        return Targets()  # it reaches nothing

    def ping(self, config: ConnectionConfig, *, timeout: float) -> PingResult:
        return PingResult(ok=True, endpoint="echo", status=200, latency_ms=0.0, message_id=None)


def test_a_borrower_counts_against_its_lender_and_its_own_level_is_ignored(
    server: Server, source: dict[str, Any],
) -> None:
    lender = server.new_connection("Lender", source["write_key"], concurrency_level=4)
    borrower = server.new_connection("Borrower", source["write_key"], concurrency_level=20,
                                     borrow_concurrency_from=lender["id"])
    concurrency = borrower["effective_concurrency"]
    assert concurrency == {"level": 4, "borrowing": True, "lender_id": lender["id"],
                           "lender_name": "Lender",
                           "note": "borrows from 'Lender' (4); its own level 20 is ignored "
                                   "while borrowing"}
    shown = server.api.get(f"/api/v1/connections/{lender['id']}").json()
    assert shown["used_by"]["borrowers"] == [{"id": borrower["id"], "name": "Borrower"}]


def test_a_chain_resolves_to_its_root_lender(server: Server, source: dict[str, Any]) -> None:
    root = server.new_connection("Root", source["write_key"], concurrency_level=2)
    middle = server.new_connection("Middle", source["write_key"],
                                   borrow_concurrency_from=root["id"])
    leaf = server.new_connection("Leaf", source["write_key"],
                                 borrow_concurrency_from=middle["id"])
    assert leaf["effective_concurrency"]["lender_id"] == root["id"]
    assert leaf["effective_concurrency"]["level"] == 2


def test_borrowing_from_itself_is_refused(server: Server, source: dict[str, Any]) -> None:
    connection = server.new_connection("Self", source["write_key"])
    response = server.api.put(f"/api/v1/connections/{connection['id']}", json=update_body(
        connection, settings=server.segment_settings(source["write_key"]),
        borrow_concurrency_from=connection["id"]))
    assert response.status_code == 422
    assert "from itself" in problems(response)["borrow_concurrency_from"]


def test_a_cycle_is_refused_and_nothing_changes(server: Server, source: dict[str, Any]) -> None:
    a = server.new_connection("A", source["write_key"])
    b = server.new_connection("B", source["write_key"], borrow_concurrency_from=a["id"])
    c = server.new_connection("C", source["write_key"], borrow_concurrency_from=b["id"])
    response = server.api.put(f"/api/v1/connections/{a['id']}", json=update_body(
        a, settings=server.segment_settings(source["write_key"]),
        borrow_concurrency_from=c["id"]))
    assert response.status_code == 422
    assert "cycle" in problems(response)["borrow_concurrency_from"]
    assert server.api.get(f"/api/v1/connections/{a['id']}").json()[
        "borrow_concurrency_from"] is None


def test_borrowing_from_another_application_is_refused(
    server: Server, source: dict[str, Any],
) -> None:
    server.runtime.registry.add(EchoApplication())
    echo = server.api.post("/api/v1/connections", json={
        "name": "Echo", "application": "echo", "settings": {"token": "t0ken"}})
    assert echo.status_code == 201, echo.text
    response = server.api.post("/api/v1/connections", json={
        "name": "Seg", "application": "segment",
        "settings": server.segment_settings(source["write_key"]),
        "borrow_concurrency_from": echo.json()["id"]})
    assert response.status_code == 422
    assert "same application" in problems(response)["borrow_concurrency_from"]


def test_borrowing_from_another_account_is_refused_as_unknown(
    server: Server, source: dict[str, Any],
) -> None:
    theirs = server.new_connection("Theirs", source["write_key"])
    with server.runtime.db.session() as session:
        other = accounts.create_account(session, "Other")
        user = accounts.create_user(session, other.id, "bo@other.example", None, is_admin=True)
        token = accounts.issue_token(session, user, kind="api", name="t")
    with httpx.Client(base_url=server.base_url, trust_env=False,
                      headers={"Authorization": f"Bearer {token}"}) as api:
        response = api.post("/api/v1/connections", json={
            "name": "Mine", "application": "segment",
            "settings": server.segment_settings(source["write_key"]),
            "borrow_concurrency_from": theirs["id"]})
        assert response.status_code == 422
        assert "no connection" in problems(response)["borrow_concurrency_from"]


def test_deleting_a_lender_answers_409_naming_its_borrowers(
    server: Server, source: dict[str, Any],
) -> None:
    lender = server.new_connection("Lender", source["write_key"])
    server.new_connection("Borrower one", source["write_key"],
                          borrow_concurrency_from=lender["id"])
    response = server.api.delete(f"/api/v1/connections/{lender['id']}")
    assert response.status_code == 409
    assert "Borrower one" in response.json()["error"]["message"]
    assert server.api.get(f"/api/v1/connections/{lender['id']}").status_code == 200


def test_a_connection_nothing_uses_is_deleted(server: Server, source: dict[str, Any]) -> None:
    connection = server.new_connection("Old", source["write_key"])
    assert server.api.delete(f"/api/v1/connections/{connection['id']}").status_code == 204
    assert server.api.get(f"/api/v1/connections/{connection['id']}").status_code == 404

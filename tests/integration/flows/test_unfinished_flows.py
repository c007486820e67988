"""A flow the flow builder is still building: saved without its source or its destination,
shown as unfinished, never run or enabled until both are there; flows as code stay complete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from segbridge.accounts import service as accounts
from segbridge.accounts.service import Principal
from segbridge.core.errors import Conflict, ValidationFailed
from segbridge.runtime import ADMIN_EMAIL
from tests.integration.conftest import Server
from tests.integration.flows.conftest import orders, track_flow, write_csv


def admin(server: Server) -> Principal:
    with server.runtime.db.session() as session:
        return accounts.principal_for(accounts.find_user(session, ADMIN_EMAIL), via="session")


def test_the_builder_saves_a_flow_part_by_part_and_it_runs_only_when_complete(
        server: Server, shop: dict[str, Any], tmp_path: Path) -> None:
    flows, principal = server.runtime.flows, admin(server)
    server.new_connection("Segment", server.create_source("Shop")["write_key"])
    complete = track_flow("Orders", write_csv(tmp_path / "o.csv", orders(3)), "Segment")

    draft = flows.create(principal, {"name": "Orders", "integration": "Shop"}, unfinished=True)
    assert draft.missing == ["a source (export)", "a destination (import)"]
    assert draft.enabled is False
    with pytest.raises(Conflict, match=re.escape(
            "add a source (export) and a destination (import) in the flow builder before "
            "you run it")):
        flows.start_run(principal, draft.id)
    with pytest.raises(Conflict, match="before you enable it"):
        flows.set_enabled(principal, draft.id, True)

    with_source = flows.update(principal, draft.id, {
        "name": "Orders", "integration": "Shop", "export": complete["export"]},
        unfinished=True)
    assert with_source.missing == ["a destination (import)"]
    assert "imports: []" in flows.export_yaml(principal, draft.id)

    done = flows.update(principal, draft.id, {**complete, "enabled": True}, unfinished=True)
    assert done.missing == [] and done.enabled is True
    assert flows.start_run(principal, draft.id).status == "queued"


def test_an_unfinished_flow_still_has_every_other_problem_listed(
        server: Server, shop: dict[str, Any]) -> None:
    flows, principal = server.runtime.flows, admin(server)
    with pytest.raises(ValidationFailed) as caught:
        flows.create(principal, {"name": "Orders", "integration": "Nope",
                                 "schedule": {"cron": "every day"}}, unfinished=True)
    assert [p.field for p in caught.value.problems] == ["schedule.cron"]
    assert flows.list_all(principal) == []


def test_flows_as_code_must_be_complete(server: Server, shop: dict[str, Any]) -> None:
    response = server.api.post("/api/v1/flows", json={"name": "Orders", "integration": "Shop"})
    assert response.status_code == 422
    fields = [p["field"] for p in response.json()["error"]["details"]]
    assert fields == ["export", "imports"]


def test_a_yaml_bomb_or_a_huge_file_is_refused_before_it_is_expanded(
        server: Server, shop: dict[str, Any]) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    refused = server.api.post("/api/v1/flows/import", content=bomb.encode(),
                              headers={"Content-Type": "application/yaml"})
    assert refused.status_code == 422
    assert "expands to more than 100,000 values" in refused.text
    huge = server.api.post("/api/v1/flows/import", content=b"# x\n" * 300_000,
                           headers={"Content-Type": "application/yaml"})
    assert huge.status_code == 422 and "longer than 1,000,000 characters" in huge.text
    assert server.api.get("/api/v1/flows").json() == []

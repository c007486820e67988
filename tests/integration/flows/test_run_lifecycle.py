"""The run store moves a run only along its lifecycle (flows.lifecycle), on SQLite and
PostgreSQL: a run that ended is never executed again, and a move the lifecycle does not hold
is refused without touching the stored run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segbridge.core.errors import Conflict
from segbridge.runs.executor import run_in_foreground
from segbridge.runs.lifecycle import InvalidTransition, RunStatus
from segbridge.runs.store import RunStore
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    Receiver,
    orders,
    segment_connection,
    track_flow,
    write_csv,
)
from tests.integration.flows.test_flow_runs import create_flow

ROWS = 50


def canceled_before_it_started(server: Server, receiver: Receiver, data: Path) -> str:
    """A run queued (no worker executes it here), canceled by a user, then ended by the
    terminal that executes it: canceled, its records never sent."""
    connection = segment_connection(server, receiver)
    flow = create_flow(server, track_flow("Orders", write_csv(data / "o.csv", orders(ROWS)),
                                          connection["name"]))
    queued = server.api.post(f"/api/v1/flows/{flow['id']}/runs")
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "queued"
    run_id: str = queued.json()["id"]
    canceling = server.api.post(f"/api/v1/runs/{run_id}/cancel")
    assert canceling.status_code == 200, canceling.text
    assert canceling.json()["status"] == "canceling"
    result = execute(server, run_id)
    assert result == RunStatus.CANCELED
    return run_id


def execute(server: Server, run_id: str) -> str:
    runtime = server.runtime
    return run_in_foreground(runtime.db, runtime.vault, runtime.settings, run_id).status


def stored(server: Server, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = server.api.get(f"/api/v1/runs/{run_id}").json()
    return run


def test_a_run_that_already_ended_is_not_executed_again(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
) -> None:
    run_id = canceled_before_it_started(server, receiver, tmp_path)
    ended = stored(server, run_id)

    with pytest.raises(Conflict, match=f"Run {run_id} is already canceled; nothing to execute"):
        execute(server, run_id)

    after = stored(server, run_id)
    assert after["status"] == "canceled"
    assert after["finished_at"] == ended["finished_at"]
    assert after["counts"]["sent"] == 0
    assert receiver.archived() == []  # not one record was sent


def test_the_run_store_refuses_a_move_outside_the_lifecycle_and_keeps_the_run(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
) -> None:
    run_id = canceled_before_it_started(server, receiver, tmp_path)
    store = RunStore(server.runtime.db, run_id, server.runtime.settings.run_lease_seconds)

    with pytest.raises(InvalidTransition, match="from canceled to succeeded"):
        store.finish(RunStatus.SUCCEEDED, None, None)

    after = stored(server, run_id)
    assert after["status"] == "canceled"
    assert after["message"] == "canceled by a user"

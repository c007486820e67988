"""``runs.execute``, the one entry point: a run, then each automatic retry run that follows
it, one after the other, each held in ``executing`` while it runs; a retry that another
process executes is left to it. (The runs themselves are faked: the integration tests run
real ones.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

import pytest

from segbridge.core.errors import Conflict
from segbridge.runs import execute as exported_execute
from segbridge.runs import executor
from segbridge.runs.counts import Tally
from segbridge.runs.engine import OnProgress, RunResult
from segbridge.runs.lifecycle import RunStatus
from segbridge.runs.plan import PlanContext

CTX = cast(PlanContext, SimpleNamespace(db="db"))


def fake_runs(monkeypatch: pytest.MonkeyPatch, follow_ups: dict[str, list[str]], *,
              busy_elsewhere: frozenset[str] = frozenset(),
              executing: set[str] | None = None) -> list[tuple[str, bool, list[str]]]:
    """Fake runs: each returns its id as its message; ``executed`` records what was executed,
    whether it was told about progress, and what ``executing`` held meanwhile."""
    executed: list[tuple[str, bool, list[str]]] = []

    async def run_to_its_end(run_id: str, ctx: PlanContext,
                             on_progress: OnProgress | None) -> RunResult:
        if run_id in busy_elsewhere:
            raise Conflict(f"Run {run_id} is being executed by another process")
        executed.append((run_id, on_progress is not None, sorted(executing or ())))
        return RunResult(RunStatus.COMPLETED_WITH_ERRORS, run_id, Tally())

    monkeypatch.setattr(executor, "_run_to_its_end", run_to_its_end)
    monkeypatch.setattr(executor, "queued_retry_runs",
                        lambda db, run_id: list(follow_ups.get(run_id, [])))
    return executed


def test_a_run_then_its_retry_then_the_retry_of_its_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executing: set[str] = set()
    executed = fake_runs(monkeypatch, {"run_1": ["run_2"], "run_2": ["run_3"]},
                         executing=executing)

    result = asyncio.run(executor.execute("run_1", CTX, executing=executing,
                                          on_progress=lambda tally, share: None))

    assert result.message == "run_1"  # the first run's result
    assert executed == [("run_1", True, ["run_1"]), ("run_2", False, ["run_2"]),
                        ("run_3", False, ["run_3"])]
    assert executing == set()


def test_a_retry_another_process_executes_is_left_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    executed = fake_runs(monkeypatch, {"run_1": ["run_2", "run_3"]},
                         busy_elsewhere=frozenset({"run_2"}))

    result = asyncio.run(executor.execute("run_1", CTX))

    assert result.status == RunStatus.COMPLETED_WITH_ERRORS
    assert [run_id for run_id, _, _ in executed] == ["run_1", "run_3"]


def test_the_first_run_refused_is_the_callers_to_handle(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_runs(monkeypatch, {}, busy_elsewhere=frozenset({"run_1"}))

    with pytest.raises(Conflict, match="being executed by another process"):
        asyncio.run(executor.execute("run_1", CTX))


def test_the_entry_point_is_exported_by_the_run_engine() -> None:
    assert exported_execute is executor.execute

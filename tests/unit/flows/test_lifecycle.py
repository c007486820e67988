"""A run's lifecycle: every move the code makes is allowed, every other one is refused as a bug,
and the statuses keep the strings stored in the database and shown by the API."""

from __future__ import annotations

import pytest

from segbridge.runs.lifecycle import (
    ACTIVE,
    COMPLETED,
    FINISHED,
    InvalidTransition,
    RunStatus,
    decided,
    given_back,
    transition,
)

S = RunStatus
ALLOWED = [  # (from, to, who makes the move)
    (S.QUEUED, S.RUNNING, "an executor starts it"),
    (S.QUEUED, S.CANCELING, "a user cancels it before it started"),
    (S.RUNNING, S.RUNNING, "taken over from a dead process, it starts again"),
    (S.RUNNING, S.PAUSED, "the receiver cannot be reached"),
    (S.RUNNING, S.CANCELING, "a user cancels it"),
    (S.RUNNING, S.SUCCEEDED, "it ends"),
    (S.RUNNING, S.COMPLETED_WITH_ERRORS, "it ends with record errors"),
    (S.RUNNING, S.FAILED, "it fails"),
    (S.RUNNING, S.QUEUED, "given back to the job queue: its worker stops, or died"),
    (S.PAUSED, S.PAUSED, "a second batch notices the receiver gone"),
    (S.PAUSED, S.RUNNING, "the receiver is back, or a paused run is taken over"),
    (S.PAUSED, S.CANCELING, "a user cancels it while it waits"),
    (S.PAUSED, S.SUCCEEDED, "the paused batch ended by a split, not by a probe"),
    (S.PAUSED, S.COMPLETED_WITH_ERRORS, "the paused batch gave up with errors"),
    (S.PAUSED, S.FAILED, "another import failed while this one waited"),
    (S.PAUSED, S.QUEUED, "given back to the job queue while it waited for the receiver"),
    (S.CANCELING, S.CANCELING, "a user cancels it twice"),
    (S.CANCELING, S.CANCELED, "the executor stops at its next chunk"),
    (S.CANCELING, S.SUCCEEDED, "it ended before it saw the cancel"),
    (S.CANCELING, S.COMPLETED_WITH_ERRORS, "it ended with errors before it saw the cancel"),
    (S.CANCELING, S.FAILED, "it failed before it saw the cancel"),
    (S.FAILED, S.QUEUED, "resumed after a crash"),
]
REFUSED = [  # (from, to, why it would be a bug)
    (S.SUCCEEDED, S.RUNNING, "a finished run is never executed again"),
    (S.CANCELED, S.SUCCEEDED, "a canceled run stays canceled"),
    (S.CANCELED, S.QUEUED, "only a run failed by a crash is resumed"),
    (S.COMPLETED_WITH_ERRORS, S.QUEUED, "only a run failed by a crash is resumed"),
    (S.SUCCEEDED, S.FAILED, "an end is written once"),
    (S.FAILED, S.RUNNING, "a resumed run is queued first, so it takes its flow back"),
    (S.FAILED, S.SUCCEEDED, "an end is written once"),
    (S.QUEUED, S.SUCCEEDED, "a run that never started cannot have succeeded"),
    (S.QUEUED, S.CANCELED, "a cancel passes through canceling"),
    (S.QUEUED, S.PAUSED, "only a running run notices the receiver"),
    (S.RUNNING, S.CANCELED, "a cancel passes through canceling"),
    (S.PAUSED, S.CANCELED, "a cancel passes through canceling"),
    (S.SUCCEEDED, S.QUEUED, "a finished run is never given back"),
    (S.CANCELING, S.RUNNING, "a cancel is never undone"),
    (S.CANCELING, S.PAUSED, "a cancel wins over a pause"),
    (S.CANCELING, S.QUEUED, "a cancel is never undone"),
]


@pytest.mark.parametrize(("current", "new", "who"), ALLOWED,
                         ids=[f"{a}->{b}" for a, b, _ in ALLOWED])
def test_every_move_the_code_makes_is_allowed(current: RunStatus, new: RunStatus,
                                              who: str) -> None:
    assert transition(current, new) is new, who


@pytest.mark.parametrize(("current", "new", "why"), REFUSED,
                         ids=[f"{a}->{b}" for a, b, _ in REFUSED])
def test_a_move_outside_the_lifecycle_is_refused_as_a_bug(current: RunStatus, new: RunStatus,
                                                          why: str) -> None:
    with pytest.raises(InvalidTransition, match=f"from {current} to {new}"):
        transition(current, new)


def test_every_other_move_is_refused_too() -> None:
    allowed = {(a, b) for a, b, _ in ALLOWED}
    for current in RunStatus:
        for new in RunStatus:
            if (current, new) in allowed:
                continue
            with pytest.raises(InvalidTransition):
                transition(current, new)


def test_statuses_read_back_from_the_database_as_strings_move_too() -> None:
    moved = transition("paused", "running")
    assert moved is RunStatus.RUNNING
    assert type(str(moved)) is str and str(moved) == "running"


@pytest.mark.parametrize("value", ["taken_over", "retrying", "Running", ""])
def test_a_value_that_is_no_run_status_is_refused(value: str) -> None:
    with pytest.raises(InvalidTransition, match="is no run status"):
        transition("running", value)
    with pytest.raises(InvalidTransition, match="is no run status"):
        transition(value, "running")


def test_the_stored_values_are_the_strings_the_api_has_always_shown() -> None:
    assert [status.value for status in RunStatus] == [
        "queued", "running", "paused", "canceling",
        "succeeded", "completed_with_errors", "failed", "canceled"]
    assert RunStatus.COMPLETED_WITH_ERRORS == "completed_with_errors"
    assert f"{RunStatus.CANCELING}" == "canceling"


def test_every_status_is_either_active_or_finished() -> None:
    assert set(RunStatus) == ACTIVE | FINISHED
    assert not ACTIVE & FINISHED
    assert {"queued", "running", "paused", "canceling"} == ACTIVE
    assert {"succeeded", "completed_with_errors", "failed", "canceled"} == FINISHED


def test_completed_runs_are_the_finished_ones_that_read_their_whole_input() -> None:
    assert {"succeeded", "completed_with_errors"} == COMPLETED
    assert COMPLETED < FINISHED


def test_every_active_run_can_be_canceled_and_no_finished_one() -> None:
    for status in ACTIVE:
        assert transition(status, RunStatus.CANCELING) is RunStatus.CANCELING
    for status in FINISHED:
        with pytest.raises(InvalidTransition):
            transition(status, RunStatus.CANCELING)


def test_only_a_failed_run_leaves_the_finished_statuses_and_only_for_the_queue() -> None:
    for status in FINISHED - {RunStatus.FAILED}:
        for new in RunStatus:
            with pytest.raises(InvalidTransition):
                transition(status, new)
    assert [new for new in RunStatus if _allowed(RunStatus.FAILED, new)] == [RunStatus.QUEUED]


def test_only_a_cancel_or_an_end_decides_a_run_against_a_pause() -> None:
    assert [status for status in RunStatus if decided(status)] == [
        "canceling", "succeeded", "completed_with_errors", "failed", "canceled"]
    assert decided("canceling") and not decided("paused")


def _allowed(current: RunStatus, new: RunStatus) -> bool:
    try:
        transition(current, new)
    except InvalidTransition:
        return False
    return True


@pytest.mark.parametrize(("current", "after"), [
    (S.RUNNING, S.QUEUED), (S.PAUSED, S.QUEUED), (S.QUEUED, S.QUEUED),
    (S.CANCELING, S.CANCELING)], ids=lambda status: str(status))
def test_a_run_given_back_waits_queued_unless_it_is_being_canceled(
        current: RunStatus, after: RunStatus) -> None:
    assert given_back(current) is after
    assert given_back(str(current)) is after  # (as read from the database)


@pytest.mark.parametrize("current", sorted(FINISHED))
def test_a_finished_run_is_never_given_back(current: RunStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"a {current} run cannot be given back"):
        given_back(current)

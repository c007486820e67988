"""A run's lifecycle: its statuses, the moves between them, and the groups the code asks about.

::

    queued ---> running <---> paused         (paused: the receiver cannot be reached)
     |  ^          |            |
     |  |          +------------+---> succeeded | completed_with_errors | failed
     |  |                                                                  |
     |  +-------------------------- resume (after a crash only) -----------+
     |
     +---- (and running, paused) ---> canceling ---> canceled
                                         (or an end: the run got there before the cancel)

    running, paused ---> queued               (given back to the job queue: see below)

Every status change of a run goes through ``transition``, which refuses a move the table
does not hold with ``InvalidTransition``: a bug in segbridge, never a user's mistake (the
services refuse what a user may not do, such as canceling a finished run, with a
``Conflict`` before they move anything).

Moves that are not obvious from the picture, and why each is real:

- ``running -> running``: a run taken over from a dead process, or resumed, starts again;
  ``paused -> running`` likewise for a run taken over while it was paused.
- ``paused -> paused`` and ``running -> running``: two batches of one run notice the receiver
  going away (or coming back) one after the other.
- ``paused -> succeeded | completed_with_errors | failed``: a batch that paused may end by a
  fatal answer or its tries, without the receiver being seen back.
- ``canceling -> succeeded | completed_with_errors | failed``: the run ended (or failed)
  before it saw the cancel; it reports what really happened.
- ``canceled`` only from ``canceling``: a cancel always passes through it.
- ``failed -> queued``: resuming a run that failed by a crash (``runs.store.reopen`` checks
  that it was a crash; a run failed for its data or configuration is refused before).
- ``running -> queued`` and ``paused -> queued``: only a run *given back* to the job queue
  (``given_back``): a worker stopping on SIGTERM, or a dead worker's run taken over. Nobody
  executes it until the next worker starts it (``queued -> running``); a run being canceled
  stays ``canceling``.

The values are the strings stored in the database and shown by the API, the CLI and the
pages: a ``StrEnum`` compares equal to them, so stored rows need no migration.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"  # the receiver cannot be reached; the run resumes when it can
    CANCELING = "canceling"  # a user canceled it; whoever executes it stops at its next chunk
    SUCCEEDED = "succeeded"
    COMPLETED_WITH_ERRORS = "completed_with_errors"  # read everything; some records failed
    FAILED = "failed"
    CANCELED = "canceled"


ACTIVE: frozenset[RunStatus] = frozenset({
    RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELING})
"""Not over yet: the run holds its flow (a flow has one at a time) and a user may cancel it."""

FINISHED: frozenset[RunStatus] = frozenset({
    RunStatus.SUCCEEDED, RunStatus.COMPLETED_WITH_ERRORS, RunStatus.FAILED, RunStatus.CANCELED})
"""Over: nothing changes the run any more (except resuming a run failed by a crash)."""

COMPLETED: frozenset[RunStatus] = frozenset({
    RunStatus.SUCCEEDED, RunStatus.COMPLETED_WITH_ERRORS})
"""Read its whole input: the flow's cursor moves on, intermittent errors are retried."""

_ENDS = frozenset({RunStatus.SUCCEEDED, RunStatus.COMPLETED_WITH_ERRORS, RunStatus.FAILED})

MOVES: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELING}),
    RunStatus.RUNNING: frozenset({RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELING,
                                  RunStatus.QUEUED})  # (queued: given back)
    | _ENDS,
    RunStatus.PAUSED: frozenset({RunStatus.PAUSED, RunStatus.RUNNING, RunStatus.CANCELING,
                                 RunStatus.QUEUED})  # (queued: given back)
    | _ENDS,
    RunStatus.CANCELING: frozenset({RunStatus.CANCELING, RunStatus.CANCELED}) | _ENDS,
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.COMPLETED_WITH_ERRORS: frozenset(),
    RunStatus.FAILED: frozenset({RunStatus.QUEUED}),  # resumed after a crash
    RunStatus.CANCELED: frozenset(),
}
"""Every allowed move: from a status to the statuses it may become."""


class InvalidTransition(RuntimeError):
    """A run was about to move where its lifecycle does not go: a bug in segbridge, never a
    user's mistake (those are refused earlier, with a ``Conflict`` that says why)."""


def transition(current: str, new: str) -> RunStatus:
    """The status a run moves to from ``current`` (as stored); ``InvalidTransition`` when
    the lifecycle holds no such move, or either is no run status at all."""
    source, target = _status(current), _status(new)
    if target not in MOVES[source]:
        raise InvalidTransition(f"a run cannot go from {source} to {target}")
    return target


def given_back(status: str) -> RunStatus:
    """The status of an active run given back to the queue (its lease released, its job
    waiting again): ``queued``, except a run being canceled, which stays ``canceling``."""
    current = _status(status)
    if current not in ACTIVE:
        raise InvalidTransition(f"a {current} run cannot be given back to the queue")
    if current in (RunStatus.QUEUED, RunStatus.CANCELING):
        return current
    return transition(current, RunStatus.QUEUED)


def decided(status: str) -> bool:
    """Canceling or finished: a pause or its end (the receiver gone or back) no longer
    changes the run; the cancel or the end wins."""
    return status == RunStatus.CANCELING or status in FINISHED


def _status(value: str) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise InvalidTransition(f"{value!r} is no run status") from None

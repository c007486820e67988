"""The run queue: where a started run goes to be executed.

The services put every run they start (run now, resume, retry, the schedule) in the queue
that the runtime gave them; they never execute a run nor know who does. Whoever executes runs
in this process attaches itself: the server's workers (``segbridge serve``) attach their
executor. With nobody attached (the CLI, which executes its own runs in the foreground, or a
process without workers), an enqueued run stays ``queued`` in the database, where a server's
take-over loop finds it. With PostgreSQL the runtime gives the services the job queue instead
(``segbridge.queueing.jobs.JobQueue``: a procrastinate job per run).

Two ways in:

- ``enqueue_in(session, run_id, flow_id)``: in the transaction that creates or reopens the
  run, so the run and its place in the queue are committed together, or neither is. The
  in-process queue hands the run to its runner once that transaction commits (nothing when it
  rolls back); the job queue inserts the job in the transaction itself.
- ``enqueue(run_id)``: for a run already committed (a take-over, a run given back).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

Runner = Callable[[str], object]
_PENDING = "segbridge.runs_to_enqueue"  # (in ``Session.info``) runs handed over on commit


class RunQueue:
    """The in-process run queue: hands each run to the attached runner, if any."""

    def __init__(self) -> None:
        self._runner: Runner | None = None
        self._lock = threading.Lock()

    def attach(self, runner: Runner) -> None:
        with self._lock:
            self._runner = runner

    def detach(self, runner: Runner) -> None:
        with self._lock:
            if self._runner == runner:
                self._runner = None

    def enqueue(self, run_id: str) -> None:
        with self._lock:
            runner = self._runner
        if runner is not None:
            runner(run_id)

    def enqueue_in(self, session: Session, run_id: str, flow_id: str | None) -> None:
        """Enqueue the run once the session's transaction commits; forget it if it rolls
        back (``flow_id``: the job queue's lock; unused in-process)."""
        pending: list[str] | None = session.info.get(_PENDING)
        if pending is None:  # (listening from the session's first run on)
            pending = session.info[_PENDING] = []
            event.listen(session, "after_commit", self._on_commit)
            event.listen(session, "after_transaction_end", _forget_on_rollback)
        pending.append(run_id)

    def _on_commit(self, session: Session) -> None:
        pending: list[str] = session.info[_PENDING]
        committed, pending[:] = list(pending), []
        for run_id in committed:
            self.enqueue(run_id)

    def close(self) -> None:
        """Release what the queue holds (nothing, in-process)."""


def _forget_on_rollback(session: Session, transaction: SessionTransaction,
                        *_: Any) -> None:
    """The outermost transaction ended without a commit (a commit took the runs already)."""
    if transaction.parent is None:
        session.info.get(_PENDING, []).clear()

"""The run queue: where a started run goes to be executed.

The services put every run they start (run now, resume, retry, the schedule) in the queue
that the runtime gave them; they never execute a run nor know who does. Whoever executes runs
in this process attaches itself: the server's workers (``segbridge serve``) attach their
executor. With nobody attached (the CLI, which executes its own runs in the foreground, or a
process without workers), an enqueued run stays ``queued`` in the database, where a server's
take-over loop finds it. With PostgreSQL the runtime gives the services the job queue instead
(``segbridge.queueing.jobs.JobQueue``: the same ``enqueue``, a procrastinate job per run).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Runner = Callable[[str], object]


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

    def close(self) -> None:
        """Release what the queue holds (nothing, in-process)."""

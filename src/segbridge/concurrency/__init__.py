"""The concurrency governor: how many requests may be in flight per connection pool.

``governor_for`` picks the governor of an install: with PostgreSQL the cluster governor
(every process on every machine shares each limit and each 429 back-off, ``cluster``); with
SQLite the machine's (``host``: the processes of one home share each limit through file
locks), exactly as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from segbridge.core.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from segbridge.concurrency.governor import LocalGovernor
    from segbridge.core.settings import Settings
    from segbridge.storage.db import Database


def slots_folder(home: Path) -> Path:
    """Where the processes of one home share connection limits (``HostGovernor``)."""
    return home / "slots"


def governor_for(settings: Settings, db: Database,
                 clock: Clock = SYSTEM_CLOCK) -> LocalGovernor:
    """The governor for a process of this install (closed by whoever made it)."""
    if db.engine.dialect.name == "postgresql":
        from segbridge.concurrency.cluster import ClusterGovernor

        return ClusterGovernor(db.url, clock)
    from segbridge.concurrency.host import HostGovernor

    return HostGovernor(slots_folder(settings.home), clock)

"""The machine-wide governor: every process of one segbridge home shares a connection's limit.

The server runs flows, and so does `segbridge flows run` in a terminal: two processes, each
with its own in-process governor, could together send twice a connection's level. Here each
request also holds one of the pool's slot files (``<home>/slots/<pool>/<n>.lock``, n below
the level) with an exclusive ``flock``, so the processes of one machine never have more
requests in flight than the level. The kernel drops a dead process's locks, so a killed run
never keeps a slot. Inside a process, the ``LocalGovernor`` still keeps FIFO order and the
429 back-off (that state is per process). Across machines (PostgreSQL, several servers) a
shared governor such as Redis is needed; this one covers the processes of one machine.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from segbridge.concurrency.governor import LocalGovernor
from segbridge.core.clock import SYSTEM_CLOCK, Clock

FIRST_WAIT_SECONDS = 0.002
MAX_WAIT_SECONDS = 0.05


class _Slots:
    """One pool's slot files, opened once; which of them this process holds."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[int] = []
        self.held: list[int] = []

    def ensure(self, limit: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        while len(self.files) < limit:
            path = self.folder / f"{len(self.files)}.lock"
            self.files.append(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))

    def try_take(self, limit: int) -> bool:
        for index in range(min(limit, len(self.files))):
            if index in self.held:
                continue
            try:
                fcntl.flock(self.files[index], fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            self.held.append(index)
            return True
        return False

    def give_back(self) -> None:
        fcntl.flock(self.files[self.held.pop()], fcntl.LOCK_UN)

    def close(self) -> None:
        for descriptor in self.files:
            os.close(descriptor)
        self.files, self.held = [], []


class HostGovernor(LocalGovernor):
    """``LocalGovernor`` plus one slot file lock per request, shared by the machine."""

    def __init__(self, folder: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(clock)
        self._folder = folder
        self._slots: dict[str, _Slots] = {}

    def configure(self, pool: str, limit: int) -> None:
        super().configure(pool, limit)
        slots = self._slots.setdefault(pool, _Slots(self._folder / _safe(pool)))
        slots.ensure(limit)

    async def acquire(self, pool: str) -> None:
        await super().acquire(pool)
        try:
            await self._take_slot(pool)
        except BaseException:
            self._give_back(pool)  # the process's slot, not a file: none was taken
            raise

    def release(self, pool: str) -> None:
        self._slots[pool].give_back()
        self._give_back(pool)

    def close(self) -> None:
        for slots in self._slots.values():
            slots.close()
        self._slots.clear()

    async def _take_slot(self, pool: str) -> None:
        slots, wait = self._slots[pool], FIRST_WAIT_SECONDS
        while not slots.try_take(self._pools[pool].limit):
            await asyncio.sleep(wait)  # another process holds every slot: a real wait
            wait = min(MAX_WAIT_SECONDS, wait * 2)


def _safe(pool: str) -> str:
    """A pool id (a connection id) as a folder name."""
    return "".join(char if char.isalnum() or char in "-_" else "_" for char in pool)

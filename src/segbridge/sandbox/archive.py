"""The optional archive: every accepted event, one JSON line each, appended and fsynced.

The file is readable by its owner only (0600; a missing directory is created 0700; an older
file is tightened at start). Writes run on one dedicated thread, in request order, so the
event loop keeps parsing the next request while the disk syncs; a request is answered only
after its lines are synced.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


class ArchiveWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        if path.is_file():
            os.chmod(path, 0o600)
        self._fd: int | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sandbox-archive")

    async def append(self, lines: list[bytes]) -> None:
        if not lines:
            return
        data = b"\n".join(lines) + b"\n"
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, data)

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            self._fd = os.open(self.path, flags, 0o600)
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, start)  # never leave half a request behind
            raise

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

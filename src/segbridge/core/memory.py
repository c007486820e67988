"""Keep a process's memory flat while runs move records between threads.

A run's producer thread allocates calls that the event loop thread frees. With glibc's
default of up to 8 malloc arenas per core, that pattern fragments the heaps until memory
grows with the input (measured: 524 MB peak at 1M rows, still rising; with two arenas,
195 MB and flat). glibc reads MALLOC_ARENA_MAX only at process start, so the commands that
run flows re-execute themselves once with it set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

ARENA_VARIABLE = "MALLOC_ARENA_MAX"
ARENAS = "2"
RUN_COMMANDS = (("serve",), ("flows", "run"), ("flows", "retry"), ("runs", "resume"))


def needs_arena_limit(argv: Sequence[str], environ: dict[str, str] | os._Environ[str]) -> bool:
    """True for a command that runs flows, on Linux, when the limit is not set yet."""
    if not sys.platform.startswith("linux") or ARENA_VARIABLE in environ:
        return False
    words = list(argv)
    while words[:1] == ["--as"]:  # the one global option that takes a value
        words = words[2:]
    words = [word for word in words if not word.startswith("-")]
    return any(tuple(words[: len(command)]) == command for command in RUN_COMMANDS)


def reexec_with_arena_limit(argv: Sequence[str]) -> None:
    """Replace this process by the same command with MALLOC_ARENA_MAX set (same pid)."""
    os.environ[ARENA_VARIABLE] = ARENAS
    os.execv(sys.executable, [sys.executable, "-m", "segbridge.cli", *argv])  # noqa: S606

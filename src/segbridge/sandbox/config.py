"""Configuration of the sandbox receiver."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from segbridge.sandbox.faults import FaultSettings

UnknownKeyMode = Literal["segment", "strict"]


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the receiver needs to start.

    ``unknown_key_mode`` "segment" answers 200 to a missing, short or unknown write key and to
    a request with bad calls, and drops those calls (as Segment does); "strict" refuses them
    instead: 401 for the key (as RudderStack does), 400 for the request. ``faults`` and
    ``fault_seed`` set the initial fault injection (off by default); admins change it at run
    time. ``workers`` reads batches in that many other processes (0: in the receiver's own;
    see ``workers``).
    """

    state_path: Path | None
    archive_path: Path | None = None
    unknown_key_mode: UnknownKeyMode = "segment"
    dedup_capacity: int = 1_000_000
    debugger_size: int = 500
    admin_token: str | None = None
    faults: FaultSettings | None = None
    fault_seed: int | None = None
    workers: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.unknown_key_mode not in ("segment", "strict"):
            problems.append("unknown_key_mode must be 'segment' or 'strict'")
        if self.dedup_capacity < 1:
            problems.append("dedup_capacity must be at least 1")
        if self.workers < 0:
            problems.append("workers must be 0 (none) or more")
        if self.debugger_size < 1:
            problems.append("debugger_size must be at least 1")
        if self.admin_token is not None and len(self.admin_token) < 16:
            problems.append("admin_token must be at least 16 characters")
        if problems:
            raise ValueError("invalid SandboxConfig: " + "; ".join(problems))

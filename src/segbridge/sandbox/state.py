"""Everything the receiver holds, reachable as ``app.state.sandbox``."""

from __future__ import annotations

from dataclasses import dataclass, field

from segbridge.core.clock import SYSTEM_CLOCK, Clock
from segbridge.sandbox.archive import ArchiveWriter
from segbridge.sandbox.config import SandboxConfig
from segbridge.sandbox.debugger import Debugger
from segbridge.sandbox.dedup import MessageIdDeduper
from segbridge.sandbox.faults import Faults, FaultSettings
from segbridge.sandbox.recorder import ReceiverStats, Recorder
from segbridge.sandbox.store import IMPLICIT_ACCOUNT, Source, SourceStore
from segbridge.sandbox.workers import Workers


@dataclass
class SandboxState:
    """``faults`` are the implicit account's (stand-alone: the receiver's); each account has
    its own (``faults_for``), which apply to the tracking requests of its sources. Faults
    measure their downtime on ``clock``."""

    config: SandboxConfig
    store: SourceStore
    debugger: Debugger
    dedup: MessageIdDeduper
    receiver: ReceiverStats
    faults: Faults
    archive: ArchiveWriter | None
    recorder: Recorder
    account_faults: dict[str, Faults] = field(default_factory=dict)
    clock: Clock = SYSTEM_CLOCK
    workers: Workers | None = None  # processes reading batches (``workers``), else none

    def faults_for(self, account_id: str) -> Faults:
        """The faults set by ``account_id``'s admins (off until they set some)."""
        if account_id == IMPLICIT_ACCOUNT:
            return self.faults
        faults = self.account_faults.get(account_id)
        if faults is None:
            faults = self.account_faults.setdefault(account_id, Faults(clock=self.clock))
        return faults

    def active_faults(self, source: Source | None) -> Faults | None:
        """The faults that apply to a tracking request for ``source`` (None: a missing or
        unknown key, the implicit account's), or None when none are on."""
        account_id = source.account_id if source is not None else IMPLICIT_ACCOUNT
        faults = self.faults_for(account_id) if account_id == IMPLICIT_ACCOUNT else (
            self.account_faults.get(account_id)
        )
        return faults if faults is not None and faults.active() else None

    def delete_source(self, source_id: str, account_id: str | None = None) -> Source:
        """Delete a source (of ``account_id`` when given): its key becomes unknown and its live
        streams end."""
        source = self.store.delete(source_id, account_id)
        self.debugger.remove(source_id)
        return source

    def end_streams(self) -> None:
        """End every live Debugger stream (and any opened later): the server is shutting
        down. Never blocks; safe from any thread (see ``serving``)."""
        self.debugger.close()

    def close(self) -> None:
        """End live streams, flush and close the archive, close the database.

        Safe to call from any thread (e.g. after ``uvicorn.run`` returns, or from a test
        while the server still runs) and more than once.
        """
        self.end_streams()
        if self.workers is not None:
            self.workers.close()
        if self.archive is not None:
            self.archive.close()
        self.store.close()


def build_state(config: SandboxConfig, clock: Clock = SYSTEM_CLOCK) -> SandboxState:
    debugger = Debugger(config.debugger_size)
    dedup = MessageIdDeduper(config.dedup_capacity)
    archive = ArchiveWriter(config.archive_path) if config.archive_path else None
    return SandboxState(
        config=config,
        store=SourceStore(config.state_path),
        debugger=debugger,
        dedup=dedup,
        receiver=ReceiverStats(),
        faults=Faults(config.faults or FaultSettings(), seed=config.fault_seed, clock=clock),
        archive=archive,
        recorder=Recorder(debugger, dedup, archive),
        clock=clock,
        workers=Workers(config.workers) if config.workers else None,
    )

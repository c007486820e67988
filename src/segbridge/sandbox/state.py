"""Everything the receiver holds, reachable as ``app.state.sandbox``."""

from __future__ import annotations

from dataclasses import dataclass

from segbridge.sandbox.archive import ArchiveWriter
from segbridge.sandbox.config import SandboxConfig
from segbridge.sandbox.debugger import Debugger
from segbridge.sandbox.dedup import MessageIdDeduper
from segbridge.sandbox.faults import Faults, FaultSettings
from segbridge.sandbox.recorder import ReceiverStats, Recorder
from segbridge.sandbox.store import Source, SourceStore


@dataclass
class SandboxState:
    config: SandboxConfig
    store: SourceStore
    debugger: Debugger
    dedup: MessageIdDeduper
    receiver: ReceiverStats
    faults: Faults
    archive: ArchiveWriter | None
    recorder: Recorder

    def delete_source(self, source_id: str) -> Source:
        """Delete a source: its key becomes unknown and its live streams end."""
        source = self.store.delete(source_id)
        self.debugger.remove(source_id)
        return source

    def close(self) -> None:
        """End live streams, flush and close the archive, close the database.

        Safe to call from any thread (e.g. after ``uvicorn.run`` returns, or from a test
        while the server still runs) and more than once.
        """
        self.debugger.close()
        if self.archive is not None:
            self.archive.close()
        self.store.close()


def build_state(config: SandboxConfig) -> SandboxState:
    debugger = Debugger(config.debugger_size)
    dedup = MessageIdDeduper(config.dedup_capacity)
    archive = ArchiveWriter(config.archive_path) if config.archive_path else None
    return SandboxState(
        config=config,
        store=SourceStore(config.state_path),
        debugger=debugger,
        dedup=dedup,
        receiver=ReceiverStats(),
        faults=Faults(config.faults or FaultSettings(), seed=config.fault_seed),
        archive=archive,
        recorder=Recorder(debugger, dedup, archive),
    )

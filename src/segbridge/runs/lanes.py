"""Lanes: a large file's run produced by N processes, so mapping uses every core.

One thread holding the GIL maps ~100k records/s; a large CSV, NDJSON or JSON file is therefore
produced by N *lane* processes (``python -m segbridge.runs.lanes``), each a ``Producer`` in
lane mode: the input is cut into blocks of ``block_records`` positions, lane i maps blocks i,
i+N, i+2N..., and each block comes back as one chunk (seq = block + 1). Before the lanes
start, the run's process finds where each block of a CSV or NDJSON file starts (one scan,
``apps/files/boundaries.py``) and each lane reads only its own blocks; for a JSON array, or a
file where those starts cannot be proven, every lane reads the whole file and skips the others'
blocks. Either way positions, refs and record errors are exactly those of one producer, and
messageIds (flow, import, position or key) are the same whichever process made them.

The run's process keeps everything else: a ``LaneReader`` thread reads the chunks in seq
order (lane (seq - 1) mod N), within the engine's chunks-ahead slots, and the engine delivers,
counts and commits them as always. A lane only reads a file and writes to a pipe: killing it
loses nothing, and a lane whose run's process died ends on its next write.

A lane that dies (killed, out of memory) is started again in its place, from its first block
not yet read (``LaneProcess(first_block=...)``: the same blocks, numbered from there), so every
block is read once; after ``MAX_LANE_RESTARTS`` deaths in one run the run fails as *crashed*
(``LaneDied``), which may be resumed from its checkpoint.

    run process                         lane i (stdin: the spec as JSON)
      LaneReader --reads frames------<  stdout: [8-byte length][pickle] per chunk, then
      (seq order, within slots)                 ("end", peak KB) or ("error", message)
"""

from __future__ import annotations

import logging
import os
import pickle
import resource
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from segbridge.core.errors import FatalError, SegbridgeError
from segbridge.runs.batching import PackedCalls
from segbridge.runs.diff import SnapshotCheck, SyncMode, version_hasher
from segbridge.runs.message_ids import MessageIds
from segbridge.runs.producer import Chunk, CompiledImport, Lane, Producer, Source, take_slot

if TYPE_CHECKING:
    from segbridge.apps.base import LookupRequest
    from segbridge.core.access import AccessPolicy
    from segbridge.core.settings import Settings
    from segbridge.runs.lookups import LookupSteps

log = logging.getLogger(__name__)
FRAME_HEADER = struct.Struct("<Q")
PIPE_BUFFER = 1 << 20
DEFAULT_MIN_FILE_BYTES = 32 * 1024 * 1024
DEFAULT_BLOCK_RECORDS = 8192
MAX_LANES = 8
MAX_LANE_RESTARTS = 3  # lane deaths one run survives; one more and the run has crashed


@dataclass(frozen=True)
class LanePolicy:
    """When a run is split into lanes: a file export of at least ``min_file_bytes`` on a
    machine where ``count`` >= 2 (0 or 1: always one producer thread)."""

    count: int = 0
    min_file_bytes: int = DEFAULT_MIN_FILE_BYTES
    block_records: int = DEFAULT_BLOCK_RECORDS

    @classmethod
    def for_machine(cls, count: int | None = None,
                    min_file_bytes: int = DEFAULT_MIN_FILE_BYTES) -> LanePolicy:
        """``count`` lanes, or one per core (at most ``MAX_LANES``) when None."""
        lanes = min(os.cpu_count() or 1, MAX_LANES) if count is None else count
        return cls(count=lanes if lanes >= 2 else 0, min_file_bytes=min_file_bytes)

    def applies(self, file_bytes: int) -> bool:
        return self.count >= 2 and file_bytes >= self.min_file_bytes


def lane_policy(settings: Settings) -> LanePolicy:
    """The lanes of the server's and the CLI's runs (``SEGBRIDGE_RUN_LANES``...)."""
    return LanePolicy.for_machine(settings.run_lanes,
                                  int(settings.run_lanes_min_file_mb * 1024 * 1024))


@dataclass(frozen=True)
class LaneImport:
    name: str
    call: str
    mapping: dict[str, Any]
    flow_id: str
    salt: str
    sync: str = "all"  # a diffed import: the lane hashes its calls, the engine compares them
    deleted: dict[str, Any] | None = None  # its call for deleted keys (the lane notes the
    # identity of what it sends, and the keys it holds back: ``runs.diff_deletions``)


@dataclass(frozen=True)
class LaneLookup:
    """A lookup step as a lane opens its own: the application, the request's parts, the
    connection's settings and its secrets (revealed only into the lane's spec, which goes
    down a private pipe to the lane's stdin: never logged, never shown by a repr)."""

    application: str
    lookup: dict[str, Any]
    params: list[str]
    where: str  # the step's place in the flow document (steps.N.lookup)
    values: dict[str, Any]
    policy: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, application: str, request: LookupRequest) -> LaneLookup:
        return cls(application=application, lookup=dict(request.lookup),
                   params=list(request.params), where=request.field,
                   values=dict(request.connection.values),
                   policy=_policy_json(request.policy),
                   secrets={name: secret.reveal()
                            for name, secret in request.connection.secrets.items()})


@dataclass(frozen=True)
class LaneSpec:
    """Everything a lane needs to produce its blocks (JSON: it crosses a process boundary)."""

    count: int
    block_records: int
    export: dict[str, Any]  # {"type", "path", "options"}
    imports: list[LaneImport]
    filters: list[str] = field(default_factory=list)
    key_field: str | None = None
    start: int = 0
    limits: dict[str, int] = field(default_factory=dict)  # RecordLimits; {}: the defaults
    lookups: list[LaneLookup] = field(default_factory=list, repr=False)
    diff: dict[str, Any] | None = field(default=None, repr=False)  # ``diff_store.lane_check``
    boundaries: dict[str, Any] | None = None  # where blocks start: lanes read only theirs

    def to_json(self, index: int) -> bytes:
        return orjson.dumps({"index": index, **asdict(self)})


SkipBlocks = Callable[[str, Any], tuple[int, ...]]
"""A diff sync's blocks its lanes need not read, from the file's path and its boundaries
(``DiffRun.skip_blocks``): their starts."""


class LaneFailed(FatalError):
    """A lane could not go on (its export failed, or the process died)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, cause="lane")


class LaneDied(LaneFailed):
    """A lane's process ended without its last frame: a crash, not a fault of the data."""

    def __init__(self, index: int, code: int) -> None:
        super().__init__(f"lane {index} ended unexpectedly (exit code {code})")
        self.index = index
        self.exit_code = code


# -- in the run's process -------------------------------------------------------------------


class LaneProcess:
    """One lane: the process and the frames it writes.

    ``first_block`` > 0 starts a lane again in the place of one that died: it produces lane
    ``index``'s blocks from that block on (0-based, counted from ``spec.start``), as a lane of
    a spec that starts there, its chunks numbered back (``offset``) to the run's seq."""

    def __init__(self, spec: LaneSpec, index: int, *, first_block: int = 0) -> None:
        self.index = index
        self.offset = first_block
        if first_block:
            spec = replace(spec, start=spec.start + first_block * spec.block_records)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "segbridge.runs.lanes"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, bufsize=PIPE_BUFFER)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._out: IO[bytes] = self.process.stdout
        self.process.stdin.write(spec.to_json((index - first_block) % spec.count))
        self.process.stdin.close()

    def read(self) -> tuple[Any, ...]:
        (size,) = FRAME_HEADER.unpack(self._read_exactly(FRAME_HEADER.size))
        # our own child process over a private pipe: trusted
        frame: tuple[Any, ...] = pickle.loads(self._read_exactly(size))  # noqa: S301
        return frame

    def _read_exactly(self, size: int) -> bytes:
        data = self._out.read(size)
        if len(data) < size:
            raise LaneDied(self.index, self.process.wait())
        return data

    def close(self, *, ended: bool) -> None:
        if not ended:
            self.process.kill()
        self.process.wait()
        self._out.close()


class LaneReader:
    """Takes the place of the producer thread when a run has lanes: starts them, reads their
    chunks in seq order within the engine's slots, and stops them when the run stops."""

    def __init__(self, spec: LaneSpec, emit: Callable[[Chunk | None], None],
                 slots: threading.Semaphore, stop: threading.Event,
                 skip_blocks: SkipBlocks | None = None) -> None:
        self.spec = spec
        self.skip_blocks = skip_blocks
        self.emit = emit
        self.slots = slots
        self.stop = stop
        self.error: BaseException | None = None
        self.peak_kb: list[int] = []
        self.restarts_left = MAX_LANE_RESTARTS

    def run(self) -> None:
        lanes: list[LaneProcess] = []
        ended = False
        try:
            log.info("the run is produced by %d lanes, blocks of %d records", self.spec.count,
                     self.spec.block_records)
            self.spec = spec_with_boundaries(self.spec, self.stop.is_set, self.skip_blocks)
            lanes = [LaneProcess(self.spec, index) for index in range(self.spec.count)]
            ended = self._read(lanes)
            if ended:
                log.info("the lanes are done; peak memory of each: %s MB",
                         ", ".join(str(kb // 1024) for kb in self.peak_kb))
        except BaseException as exc:  # reported by the engine as the run's failure
            self.error = exc
        finally:
            self.emit(None)
            for lane in lanes:
                lane.close(ended=ended)

    def _read(self, lanes: list[LaneProcess]) -> bool:
        """Chunks in seq order until a lane has no next block; False when stopped."""
        seq = 1
        while take_slot(self.slots, self.stop):
            turn = (seq - 1) % len(lanes)
            frame = self._next_frame(lanes, turn, seq)
            lane = lanes[turn]
            if frame[0] == "chunk":
                chunk = chunk_from_frame(frame)
                chunk.seq += lane.offset
                if chunk.seq != seq:
                    raise LaneFailed(f"lane {lane.index} sent chunk {chunk.seq}, not {seq}")
                self.emit(chunk)
                seq += 1
                continue
            self.slots.release()
            self._ended(lane, frame)
            for other in range(len(lanes)):  # no lane holds a later block: each one ends too
                if other != turn:
                    self._ended(lanes[other], self._next_frame(lanes, other, seq))
            return True
        return False

    def _next_frame(self, lanes: list[LaneProcess], turn: int, seq: int) -> tuple[Any, ...]:
        """The next frame of lane ``turn``; a lane that died is started again in its place,
        from its first block not yet read (every block before ``seq`` was read)."""
        while True:
            lane = lanes[turn]
            try:
                return lane.read()
            except LaneDied as died:
                if self.restarts_left <= 0 or self.stop.is_set():
                    raise
                self.restarts_left -= 1
                log.warning("%s; starting it again from chunk %d (%d restart(s) left)",
                            died.message, seq, self.restarts_left)
                lane.close(ended=True)
                lanes[turn] = LaneProcess(self.spec, lane.index, first_block=seq - 1)

    def _ended(self, lane: LaneProcess, frame: tuple[Any, ...]) -> None:
        if frame[0] == "error":
            raise LaneFailed(frame[1])
        if frame[0] != "end":
            raise LaneFailed(f"lane {lane.index} sent a chunk after the input ended")
        self.peak_kb.append(int(frame[1]))


def spec_with_boundaries(spec: LaneSpec, stop: Callable[[], bool] | None = None,
                         skip_blocks: SkipBlocks | None = None) -> LaneSpec:
    """The spec with where each block of a CSV or NDJSON file starts (one scan, here in the
    run's process, at C speed), so each lane reads only its own blocks; unchanged for other
    files and for a file where a byte split cannot be proven to read as one pass does (its
    lanes read the whole file)."""
    from segbridge.apps.files.boundaries import file_boundaries

    began = time.perf_counter()
    export = spec.export
    found = file_boundaries(export["type"], export["path"], export.get("options"),
                            spec.limits, spec.start, spec.block_records, stop)
    if found is None:
        if export["type"] in ("csv", "ndjson"):
            log.info("each lane reads the whole file (its blocks' starts cannot be proven)")
        return spec
    log.info("each lane reads only its blocks (%d blocks found in %.2f s)", len(found.marks),
             time.perf_counter() - began)
    if skip_blocks is not None:
        found = replace(found, skip=skip_blocks(export["path"], found))
        if found.skip:
            log.info("%d of %d blocks are unchanged since a run that kept them: not read",
                     len(found.skip), len(found.marks))
    return replace(spec, boundaries=found.to_json())


def chunk_frame(chunk: Chunk) -> tuple[Any, ...]:
    """A chunk with its calls packed (pickled fast, unpacked only for failed calls)."""
    return ("chunk", replace(chunk, batches=[
        (index, items if isinstance(items, PackedCalls) else PackedCalls.pack(items))
        for index, items in chunk.batches]))


def chunk_from_frame(frame: tuple[Any, ...]) -> Chunk:
    chunk: Chunk = frame[1]
    return chunk


# -- in a lane process ----------------------------------------------------------------------


def lane_source(spec: dict[str, Any]) -> Source:
    """The lane's export, compiled mappings, messageIds and filters, from its spec."""
    from segbridge.apps.files.boundaries import with_boundaries
    from segbridge.apps.files.export import file_export
    from segbridge.exports.limits import RecordLimits
    from segbridge.mapping import compile_expression, compile_mapping

    export = spec["export"]
    limits = RecordLimits(**spec.get("limits") or {})
    imports = [_compiled(step, compile_mapping) for step in spec["imports"]]
    opened = file_export(export["type"], export["path"], export.get("options"), limits)
    with_boundaries(opened, spec.get("boundaries"))
    return Source(export=opened, imports=imports, start=spec["start"],
                  key_field=spec["key_field"],
                  filters=[compile_expression(text) for text in spec["filters"]],
                  lookups=lane_lookups(spec.get("lookups") or []),
                  diff=_lane_check(spec.get("diff")))


def _lane_check(diff: dict[str, Any] | None) -> SnapshotCheck | None:
    """A diffed flow's snapshots, read by the lane on its own connection to the database."""
    if not diff:
        return None
    from segbridge.runs.diff_reader import lane_check

    return lane_check(diff)


def _compiled(step: dict[str, Any], compile_mapping: Any) -> CompiledImport:
    """A lane's import; a diffed one with its record versions (``runs.diff``)."""
    sync = SyncMode(step.get("sync", SyncMode.ALL))
    return CompiledImport(step["name"], compile_mapping(step["call"], step["mapping"]),
                          MessageIds(step["flow_id"], step["name"], step["call"], step["salt"]),
                          sync, version_hasher(step["call"], step["mapping"])
                          if sync is not SyncMode.ALL else None, step.get("deleted"))


def lane_lookups(lookups: list[dict[str, Any]]) -> LookupSteps | None:
    """The lane's own lookups (its own connections and caches), opened from the spec."""
    if not lookups:
        return None
    from segbridge.apps.base import ConnectionConfig, LookupRequest, lookup_opener
    from segbridge.apps.registry import default_registry
    from segbridge.core.secrets import Secret
    from segbridge.runs.lookup_factory import lookup_step
    from segbridge.runs.lookups import LookupSteps

    registry = default_registry()
    steps = []
    try:
        for one in lookups:
            config = ConnectionConfig(one["values"], {name: Secret(value) for name, value
                                                      in one["secrets"].items()})
            request = LookupRequest(lookup=one["lookup"], params=tuple(one["params"]),
                                    connection=config, policy=_policy(one["policy"]),
                                    field=one["where"])
            steps.append(lookup_step(lookup_opener(registry, one["application"]), request))
    except BaseException:
        LookupSteps(steps).close()
        raise
    return LookupSteps(steps)


def _policy_json(policy: AccessPolicy) -> dict[str, Any]:
    """The access policy a lane's lookups are checked against, as JSON."""
    return {"file_roots": [str(path) for path in policy.file_roots],
            "protected": [str(path) for path in policy.protected],
            "deny_private": policy.deny_private, "allow_hosts": sorted(policy.allow_hosts),
            "own_ports": sorted(policy.own_ports), "own_hosts": sorted(policy.own_hosts),
            "own_database": list(policy.own_database) if policy.own_database else None}


def _policy(data: dict[str, Any]) -> AccessPolicy:

    from segbridge.core.access import AccessPolicy

    own = data["own_database"]
    return AccessPolicy(file_roots=tuple(Path(p) for p in data["file_roots"]),
                        protected=tuple(Path(p) for p in data["protected"]),
                        deny_private=data["deny_private"],
                        allow_hosts=frozenset(data["allow_hosts"]),
                        own_ports=frozenset(data["own_ports"]),
                        own_hosts=frozenset(data["own_hosts"]),
                        own_database=(own[0], int(own[1]), own[2]) if own else None)


def peak_memory_kb() -> int:
    """This process's peak resident memory since it started the lane's program (VmHWM:
    getrusage's ru_maxrss also counts the run process's pages the lane held between fork and
    exec, and read up to 91 MB for a lane of 29)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def lane_main() -> None:
    """``python -m segbridge.runs.lanes``: produce this lane's chunks on stdout."""
    from segbridge.core.gc_tuning import freeze_long_lived_objects

    spec = orjson.loads(sys.stdin.buffer.read())
    out = os.fdopen(os.dup(1), "wb", buffering=PIPE_BUFFER)
    os.dup2(2, 1)  # anything printed by mistake goes to stderr, not into the frames

    def write(frame: tuple[Any, ...]) -> None:
        payload = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(FRAME_HEADER.pack(len(payload)))
        out.write(payload)
        out.flush()

    def emit(chunk: Chunk | None) -> None:
        if chunk is not None:
            write(chunk_frame(chunk))

    try:
        source = lane_source(spec)
    except Exception as exc:
        write(("error", getattr(exc, "message", None) or str(exc)))
        return
    freeze_long_lived_objects()
    lane = Lane(spec["index"], spec["count"], spec["block_records"], spec["start"])
    producer = Producer(source, emit, None, threading.Event(), lane)
    producer.run()
    if producer.error is not None:
        error = producer.error
        if not isinstance(error, SegbridgeError):  # a bug: its traceback goes to the log
            traceback.print_exception(error)
        write(("error", getattr(error, "message", None) or f"{type(error).__name__}: {error}"))
    else:
        write(("end", peak_memory_kb()))
    out.close()


if __name__ == "__main__":
    try:
        lane_main()
    except BrokenPipeError:  # the run's process is gone: nothing to report to
        sys.exit(1)

"""An export (``Capability.EXPORT``), as every source must pass it: read all of it, then
open it again as a resumed run does and read from position N: the same records from N on
(positions, refs, data, unreadable records and their errors), whatever happened to the source
in between that the export promises to ignore (an incremental export's new rows); and a
failing export names its cause with no secret in its message, its traceback or the logs.

An application's test class lists ``export_samples`` (names) and gives
``export_sample(name, folder)``: the export section of a flow document, its connection, and
what to do to the source between the first read and the resumed ones.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from segbridge.apps.base import (
    Application,
    Capability,
    ConnectionConfig,
    Exporter,
    ExportRequest,
    OpenedExport,
    ResumeState,
)
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import ApplicationError, SegbridgeError
from segbridge.exports.contracts import SourceRecord
from segbridge.exports.limits import RecordLimits
from tests.kit.connection import ACTION
from tests.kit.secrets import captured_logs, leaks, secret_forms, written_lines

NO_SAMPLE = "none"


@dataclass(frozen=True)
class ExportSample:
    """One export to check.

    export: the flow document's export section (``type`` and the kind's own fields).
    connection: the export's connection (None for an export without one).
    saved_cursor: what the flow's last successful run stored (incremental exports).
    between: changes the source after the first read, in ways a resumed run must not see.
    fails: the cause code (or, for an error that is not an application's, the error code)
        of an export that must fail; None for one that must read to its end.
    """

    export: Mapping[str, Any]
    connection: ConnectionConfig | None = None
    saved_cursor: Mapping[str, Any] | None = None
    between: Callable[[], None] = lambda: None
    fails: str | None = None
    resume_at: tuple[int, ...] = ()  # positions to resume at; the kit adds 0, 1, middle, end


def fingerprint(record: SourceRecord) -> tuple[Any, ...]:
    """What a resumed read must give back the same."""
    return (record.position, record.ref, json.dumps(record.data, sort_keys=True, default=str),
            record.error, record.field, record.raw, record.cursor)


class ExportKit:
    """Fill in ``export_samples`` and ``export_sample``; the kit opens each through the
    application's ``open_export``, as a run and a resumed run do."""

    application: ClassVar[Application]
    export_samples: ClassVar[tuple[str, ...]] = ()  # exports that read to their end
    failing_exports: ClassVar[tuple[str, ...]] = ()  # exports that fail, each with its cause

    def export_sample(self, name: str, folder: Path) -> AbstractContextManager[ExportSample]:
        raise NotImplementedError(f"{type(self).__name__}: export_sample({name!r})")

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "sample" in metafunc.fixturenames:
            metafunc.parametrize("sample", list(self.export_samples) or [NO_SAMPLE])
        if "failing" in metafunc.fixturenames:
            metafunc.parametrize("failing", list(self.failing_exports) or [NO_SAMPLE])

    def exporter(self) -> Exporter:
        if Capability.EXPORT not in self.application.capabilities:
            pytest.skip(f"{self.application.name} is not a source (no EXPORT capability)")
        assert isinstance(self.application, Exporter), "EXPORT declared, open_export missing"
        return self.application

    def open(self, sample: ExportSample, folder: Path,
             resume: ResumeState | None = None) -> OpenedExport:
        return self.exporter().open_export(request_for(sample, folder, resume))

    def test_export_capability_is_declared_with_open_export(self) -> None:
        can = Capability.EXPORT in self.application.capabilities
        assert can == isinstance(self.application, Exporter)
        assert can == bool(self.export_samples), "an exporter lists export_samples"
        if isinstance(self.application, Exporter):
            assert self.application.export_kinds, "an exporter names its export kinds"

    def test_an_export_resumes_at_any_position_with_the_same_records(
        self, sample: str, tmp_path: Path,
    ) -> None:
        self.exporter()
        with self.export_sample(sample, tmp_path) as given:
            assert given.export["type"] in self.exporter().export_kinds
            first = self.open(given, tmp_path)
            everything = [fingerprint(r) for r in first.export.records()]
            assert len(everything) >= 3, "a sample needs a few records to resume within"
            assert [f[0] for f in everything] == list(range(len(everything))), \
                "positions are the ordinals of the records, from 0"
            given.between()
            resumed = ResumeState(saved_bounds=first.bounds, saved_cursor=given.saved_cursor)
            for start in resume_points(len(everything), given.resume_at):
                again = self.open(given, tmp_path, resumed)
                from_start = [fingerprint(r) for r in again.export.records(start)]
                assert from_start == everything[start:], f"resumed at {start}"

    def test_an_export_reads_the_same_twice(self, sample: str, tmp_path: Path) -> None:
        self.exporter()
        with self.export_sample(sample, tmp_path) as given:
            first = [fingerprint(r) for r in self.open(given, tmp_path).export.records()]
            second = [fingerprint(r) for r in self.open(given, tmp_path).export.records()]
            assert first == second

    def test_an_export_shows_no_secret(self, sample: str, tmp_path: Path) -> None:
        """Not in its repr, its request's, its records' errors, nor the logs while it reads."""
        self.exporter()
        with self.export_sample(sample, tmp_path) as given, captured_logs() as logs:
            shown, failure = read_everything(lambda: self.open(given, tmp_path))
        assert failure is None, f"the export failed: {failure}"
        shown.append(repr(request_for(given, tmp_path)))
        assert not leaks(shown + written_lines(logs.records), forms_of(given))

    def test_a_failing_export_names_its_cause_and_shows_no_secret(
        self, failing: str, tmp_path: Path,
    ) -> None:
        """The error has the sample's cause code and says what to do; neither its message, its
        traceback (chained driver errors included) nor the logs show a secret."""
        self.exporter()
        if failing == NO_SAMPLE:
            pytest.skip(f"{self.application.name} lists no failing_exports")
        with self.export_sample(failing, tmp_path) as given, captured_logs() as logs:
            shown, failure = read_everything(lambda: self.open(given, tmp_path))
        assert isinstance(failure, SegbridgeError), f"the export did not fail: {failure!r}"
        assert cause_of(failure) == given.fails, failure.message
        assert ACTION.search(failure.message), f"no advice in: {failure.message!r}"
        shown += [failure.message, *traceback.format_exception(failure)]
        assert not leaks(shown + written_lines(logs.records), forms_of(given))


def cause_of(error: SegbridgeError) -> str:
    """An application error's cause code, else the error's code (``not_allowed_here``)."""
    return error.cause if isinstance(error, ApplicationError) else error.code


def forms_of(sample: ExportSample) -> set[str]:
    return secret_forms(sample.connection.secrets.values() if sample.connection else ())


def request_for(sample: ExportSample, folder: Path,
                resume: ResumeState | None = None) -> ExportRequest:
    """The request a run (or, with ``resume``, a resumed run) opens the sample with."""
    return ExportRequest(sample.export, sample.connection, policy_for(folder), RecordLimits(),
                         no_uploads, resume or ResumeState(saved_cursor=sample.saved_cursor))


def resume_points(count: int, extra: tuple[int, ...]) -> list[int]:
    return sorted({0, 1, count // 2, count - 1, count, count + 3, *extra})


def read_everything(
    open_export: Callable[[], OpenedExport],
) -> tuple[list[str], BaseException | None]:
    """Open and read an export to its end: what it showed, and the error that ended it."""
    shown: list[str] = []
    try:
        opened = open_export()
        shown.append(repr(opened.export))
        for record in opened.export.records():
            shown += [str(record.error or ""), str(record.raw or "")]
    except SegbridgeError as exc:
        return shown, exc
    return shown, None


def policy_for(folder: Path) -> AccessPolicy:
    """The test's own folder is the install's one file root; no address is refused."""
    return AccessPolicy(file_roots=(folder,), protected=())


def no_uploads(upload_id: str) -> Path:
    raise AssertionError(f"the kit's samples use no uploads ({upload_id})")


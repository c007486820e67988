"""A lane skips a block its boundaries name only in the file they were found in: a file
replaced after the scan is read whole, every record compared (``runs.diff_blocks``)."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

from segbridge.apps.files.boundaries import file_boundaries
from segbridge.apps.files.export import file_export
from segbridge.mapping import compile_mapping
from segbridge.runs.diff import SnapshotCheck, SyncMode, version_hasher
from segbridge.runs.message_ids import MessageIds
from segbridge.runs.producer import Chunk, CompiledImport, Lane, Producer, Source

MAPPING = {"userId": "id", "event": {"constant": "E"}, "properties": {"fields": {"name": "name"}}}


def write(path: Path, tag: str) -> Path:
    path.write_text("id,name\n" + "".join(f"{i},{tag}{i}\n" for i in range(40)))
    return path


def produce(path: Path, skip: tuple[int, ...], replaced_by: str | None = None) -> list[Chunk]:
    found = file_boundaries("csv", str(path), {}, {}, 0, 10)
    assert found is not None
    if replaced_by is not None:  # after the scan, before the lane opens the file
        new = write(path.with_name("new.csv"), replaced_by)
        os.replace(new, path)
    export = file_export("csv", str(path))
    export.boundaries = replace(found, skip=skip)  # type: ignore[attr-defined]
    every_key_new = SnapshotCheck(lambda _s, keys, _v: dict.fromkeys(range(len(keys))), {0: 1})
    imp = CompiledImport("Orders", compile_mapping("track", MAPPING),
                         MessageIds("f", "Orders", "track"), SyncMode.CHANGED,
                         version_hasher("track", MAPPING))
    chunks: list[Chunk] = []
    producer = Producer(Source(export=export, imports=[imp], key_field="id",
                               diff=every_key_new),
                        lambda chunk: chunks.append(chunk) if chunk else None, None,
                        threading.Event(), Lane(0, 1, 10, 0))
    producer.run()
    assert producer.error is None, producer.error
    return chunks


def counts(chunks: list[Chunk]) -> dict[int, dict[str, int]]:
    return {chunk.start: {key: value for key, value in chunk.tally.imports["Orders"].items()
                          if key in ("new", "unchanged") and value} for chunk in chunks}


def test_the_blocks_named_are_counted_unchanged_and_not_read(tmp_path: Path) -> None:
    chunks = produce(write(tmp_path / "f.csv", "old"), skip=(0, 20))
    assert counts(chunks) == {0: {"unchanged": 10}, 10: {"new": 10}, 20: {"unchanged": 10},
                              30: {"new": 10}}


def test_a_file_replaced_after_the_scan_is_read_whole_and_skips_nothing(tmp_path: Path) -> None:
    """(A reviewer found the skip decided on the path and the file opened after it: the new
    file's records at the skipped positions were counted unchanged, never compared.)"""
    chunks = produce(write(tmp_path / "f.csv", "old"), skip=(0, 20), replaced_by="NEW")
    assert counts(chunks) == {0: {"new": 10}, 10: {"new": 10}, 20: {"new": 10},
                              30: {"new": 10}}

"""The local Segment's files hold write keys and every accepted event: owner only (0600, a
directory it creates 0700), and a state file from before accounts keeps its sources."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from segbridge.sandbox import SandboxConfig, SourceStore, create_sandbox_app
from segbridge.sandbox.store import IMPLICIT_ACCOUNT, InvalidSourceName

from .conftest import basic, serve

OLD_SCHEMA = """
CREATE TABLE sources (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    write_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most systems start with: files 0644 and directories 0755 unless asked."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def old_state_file(path: Path, *names: str) -> dict[str, str]:
    """A state file as the receiver wrote it before accounts; returns name -> write key."""
    keys = {name: f"{index:032x}" for index, name in enumerate(names, 1)}
    with sqlite3.connect(path) as db:
        db.execute(OLD_SCHEMA)
        for index, name in enumerate(names, 1):
            db.execute("INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?)",
                       (f"src_old{index}", name, name.casefold(), keys[name],
                        "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"))
    db.close()
    return keys


def test_the_state_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.sqlite3"
    store = SourceStore(path)
    store.create("Keys inside")
    try:
        assert mode(path) == 0o600
        for extra in ("-wal", "-shm"):
            assert mode(path.with_name(path.name + extra)) == 0o600
    finally:
        store.close()


def test_a_missing_state_directory_is_created_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sandbox.sqlite3"
    SourceStore(path).close()
    assert mode(path.parent) == 0o700
    assert mode(path) == 0o600


def test_an_older_world_readable_state_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.sqlite3"
    old_state_file(path, "Old source")
    path.chmod(0o644)
    SourceStore(path).close()
    assert mode(path) == 0o600


def test_the_archive_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    archive = tmp_path / "archive" / "events.ndjson"
    app = create_sandbox_app(SandboxConfig(state_path=None, archive_path=archive))
    source = app.state.sandbox.store.create("Archived")
    with serve(app) as url:
        call = {"userId": "u", "event": "Archived", "messageId": "archived-1"}
        response = httpx.post(f"{url}/v1/track", json=call, headers=basic(source.write_key))
    assert response.status_code == 200
    assert mode(archive.parent) == 0o700
    assert mode(archive) == 0o600
    assert b"archived-1" in archive.read_bytes()


def test_a_state_file_from_before_accounts_keeps_its_sources(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.sqlite3"
    keys = old_state_file(path, "Web", "Backend")
    store = SourceStore(path)
    try:
        assert {s.name: s.write_key for s in store.list(IMPLICIT_ACCOUNT)} == keys
        assert store.by_write_key(keys["Web"]) is not None
        with pytest.raises(InvalidSourceName):
            store.create("web")  # names stay unique within the account
        moved = store.adopt(IMPLICIT_ACCOUNT, "acc_first")
        assert {s.name for s in moved} == {"Web", "Backend"}
        assert store.list(IMPLICIT_ACCOUNT) == []
        assert store.create("Web", "acc_other").name == "Web"  # another account's own "Web"
    finally:
        store.close()
    reopened = SourceStore(path)
    try:
        assert {s.name for s in reopened.list("acc_first")} == {"Web", "Backend"}
        assert reopened.by_write_key(keys["Backend"]).account_id == "acc_first"  # type: ignore[union-attr]
    finally:
        reopened.close()

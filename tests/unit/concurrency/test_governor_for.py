"""Which governor an install gets, and the cluster governor's pieces that need no database."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from segbridge.concurrency import governor_for, slots_folder
from segbridge.concurrency.cluster_store import conninfo, new_holder_id
from segbridge.concurrency.host import HostGovernor
from segbridge.core.settings import load_settings
from segbridge.storage.db import Database


def test_sqlite_keeps_the_machine_wide_governor_of_today(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    db = Database(settings.resolved_database_url)  # (an engine: no connection is opened)
    try:
        governor = governor_for(settings, db)
    finally:
        db.dispose()
    governor.close()
    assert type(governor) is HostGovernor
    assert governor._folder == slots_folder(settings.home) == settings.home / "slots"


def test_the_connection_string_is_libpq_s_own() -> None:
    url = "postgresql+psycopg://app:s%40cret@db.example:5433/segbridge?sslmode=require"
    assert conninfo(url) == "postgresql://app:s%40cret@db.example:5433/segbridge?sslmode=require"


def test_a_holder_names_the_machine_and_the_process_and_is_never_reused() -> None:
    first, second = new_holder_id(), new_holder_id()
    assert first.startswith(f"{socket.gethostname()[:60]}:{os.getpid()}:")
    assert first != second
    assert len(first) <= 100  # governor_slots.holder

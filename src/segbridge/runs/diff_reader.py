"""Looking keys up in the snapshots of diff syncs, on the database driver's own cursor.

A run compares every record of a diffed import with its snapshot (``runs.producer``), a group
at a time: the lookup is on the hot path of an unchanged run, so it goes to the driver
directly (SQLAlchemy's result rows cost more than the query), with the keys sorted (neighbours
share pages). The run's process looks up on a connection of segbridge's pool
(``DiffStore.lookup``); a lane process opens its own connection with ``SnapshotReader``,
which imports no SQLAlchemy and no model (a lane starts in a fraction of the time).

SQLite connections read the file through a memory map of at most ``MMAP_BYTES``: measured on
1M keys (24 MB), 2,048 keys a query, about 30% less CPU than through SQLite's page cache; a
larger snapshot's other pages are read as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from segbridge.runs.diff import SnapshotCheck

LOOKUP_KEYS = 2000  # keys per lookup query (SQLite and PostgreSQL take far more parameters)
MMAP_BYTES = 64 * 1024 * 1024  # the pages read count in the process's resident memory (they
# are the operating system's file cache, shared): at most this much of the file is mapped

LOOKUP_POSTGRESQL = (  # the keys as one array, joined: each is an index probe (an IN list
    # or "= ANY" of 2,000 keys was planned as a scan of the whole snapshot)
    "SELECT e.key_hash, e.call_hash FROM unnest(%s::bigint[]) AS k(key_hash) "
    "JOIN diff_entries e ON e.snapshot_id = %s AND e.key_hash = k.key_hash")


@lru_cache(maxsize=8)
def lookup_sqlite(keys: int) -> str:
    """The SQLite query for ``keys`` keys (one placeholder each: the keys are parameters)."""
    placeholders = ",".join("?" * keys)
    return ("SELECT key_hash, call_hash FROM diff_entries "  # noqa: S608
            f"WHERE snapshot_id = ? AND key_hash IN ({placeholders})")


def look_up(cursor: Any, postgresql: bool, snapshot: int,
            keys: Sequence[int]) -> dict[int, int]:
    """The version last sent for each of ``keys`` the snapshot has, on a DB-API cursor."""
    found: dict[int, int] = {}
    for part in _parts(sorted(keys), LOOKUP_KEYS):
        if postgresql:
            cursor.execute(LOOKUP_POSTGRESQL, (part, snapshot))
        else:
            cursor.execute(lookup_sqlite(len(part)), (snapshot, *part))
        found.update(cursor.fetchall())
    return found


def map_sqlite_file(connection: Any) -> None:
    """Read a SQLite connection's file through a memory map (see the module's doc)."""
    connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")


class SnapshotReader:
    """A lane's own read-only connection to segbridge's database, for its lookups."""

    def __init__(self, url: str) -> None:
        self.postgresql = not url.startswith("sqlite")
        self._connection: Any
        if self.postgresql:
            import psycopg

            self._connection = psycopg.connect(_libpq_url(url), autocommit=True)
        else:
            self._connection = sqlite3.connect(_sqlite_path(url), timeout=30,
                                               check_same_thread=False)
            self._connection.execute("PRAGMA query_only=ON")
            map_sqlite_file(self._connection)

    def lookup(self, snapshot: int, keys: Sequence[int]) -> dict[int, int]:
        cursor = self._connection.cursor()
        try:
            return look_up(cursor, self.postgresql, snapshot, keys)
        finally:
            cursor.close()

    def close(self) -> None:
        self._connection.close()


def lane_check(spec: dict[str, Any]) -> SnapshotCheck:
    """A lane's way to the snapshots (``DiffRun.lane_check``): its own connection."""
    reader = SnapshotReader(spec["database"])
    return SnapshotCheck(reader.lookup, {int(index): snapshot
                                         for index, snapshot in spec["snapshots"].items()})


def _sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path.startswith(":memory:"):
        raise ValueError("a lane cannot read an in-memory database: use a database file")
    return path.split("?", 1)[0]


def _libpq_url(url: str) -> str:
    """SQLAlchemy's ``postgresql+psycopg://`` URL as libpq reads it (``postgresql://``)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def _parts(keys: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(keys), size):
        yield keys[start:start + size]

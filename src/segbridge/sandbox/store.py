"""The sandbox workspace: sources and their write keys, kept in SQLite (stdlib ``sqlite3``).

Writes go to SQLite; every source is also cached in memory, keyed by write key, so the
tracking API resolves a key with one dictionary lookup and no SQL.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from segbridge.sandbox.limits import MAX_SOURCE_NAME_CHARS, WRITE_KEY_CHARS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    write_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""
_COLUMNS = "id, name, write_key, created_at, updated_at"


class SourceError(Exception):
    """Base of the store's errors; ``code`` is the API error code."""

    code = "source_error"


class SourceNotFound(SourceError):
    code = "not_found"


class InvalidSourceName(SourceError):
    code = "invalid_name"


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    name: str
    write_key: str
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "name": self.name,
            "write_key": self.write_key,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def clean_name(value: object) -> str:
    """A valid source name (trimmed, 1-100 characters) or ``InvalidSourceName``."""
    if not isinstance(value, str):
        raise InvalidSourceName("name must be a string")
    name = value.strip()
    if not name:
        raise InvalidSourceName("name must not be empty")
    if len(name) > MAX_SOURCE_NAME_CHARS:
        raise InvalidSourceName(f"name must be at most {MAX_SOURCE_NAME_CHARS} characters")
    return name


def new_write_key() -> str:
    return secrets.token_hex(WRITE_KEY_CHARS // 2)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SourceStore:
    """Create, list, rename and delete sources; look them up by id or write key."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._by_key: dict[str, Source] = {}
        self._by_id: dict[str, Source] = {}
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM sources ORDER BY rowid"):  # noqa: S608
            self._cache(Source(*row))

    def _cache(self, source: Source) -> None:
        self._by_key[source.write_key] = source
        self._by_id[source.id] = source

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def list(self) -> list[Source]:
        return list(self._by_id.values())

    def get(self, source_id: str) -> Source:
        source = self._by_id.get(source_id)
        if source is None:
            raise SourceNotFound(f"no source with id {source_id!r}")
        return source

    def by_write_key(self, write_key: str) -> Source | None:
        return self._by_key.get(write_key)

    def first_or_create(self, name: str) -> Source:
        """The oldest source, or a new one named ``name`` when there is none (atomic)."""
        with self._lock:
            existing = next(iter(self._by_id.values()), None)
            return existing or self._insert(clean_name(name))

    def create(self, name: object) -> Source:
        clean = clean_name(name)
        with self._lock:
            return self._insert(clean)

    def _insert(self, clean: str) -> Source:
        """Insert a new source; the caller holds the lock."""
        self._check_unique(clean, None)
        now = _now()
        source = Source("src_" + secrets.token_hex(8), clean, new_write_key(), now, now)
        self._db.execute(
            f"INSERT INTO sources (name_key, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
            (clean.casefold(), source.id, source.name, source.write_key, now, now),
        )
        self._cache(source)
        return source

    def rename(self, source_id: str, name: object) -> Source:
        clean = clean_name(name)
        with self._lock:
            old = self.get(source_id)
            self._check_unique(clean, source_id)
            source = Source(old.id, clean, old.write_key, old.created_at, _now())
            self._db.execute(
                "UPDATE sources SET name = ?, name_key = ?, updated_at = ? WHERE id = ?",
                (clean, clean.casefold(), source.updated_at, source_id),
            )
            self._cache(source)
            return source

    def delete(self, source_id: str) -> Source:
        with self._lock:
            source = self.get(source_id)
            self._db.execute("DELETE FROM sources WHERE id = ?", (source_id,))
            del self._by_id[source_id]
            del self._by_key[source.write_key]
            return source

    def _check_unique(self, name: str, own_id: str | None) -> None:
        key = name.casefold()
        for source in self._by_id.values():
            if source.id != own_id and source.name.casefold() == key:
                raise InvalidSourceName(f"a source named {source.name!r} already exists")

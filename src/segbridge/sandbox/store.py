"""The sandbox workspaces: sources and their write keys, kept in SQLite (stdlib ``sqlite3``).

Each source belongs to an account (its workspace). Stand-alone there is one, the implicit
account ``IMPLICIT_ACCOUNT`` (""); mounted in segbridge each segbridge account has its own,
and an account sees, changes and deletes only its own sources (another account's source id
is "not found"). Source names are unique within an account. Write keys are unique across
all accounts: the tracking API finds a source, and so its account, by key alone.

Writes go to SQLite; every source is also cached in memory, keyed by write key, so the
tracking API resolves a key with one dictionary lookup and no SQL. The state file is created
0600 (its directory, if created here, 0700): it holds write keys. A state file from before
accounts (no ``account_id`` column) is migrated in place: its sources go to the implicit
account, which segbridge hands to its first account at start (``adopt``).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from segbridge.sandbox.limits import MAX_SOURCE_NAME_CHARS, WRITE_KEY_CHARS

IMPLICIT_ACCOUNT = ""
_SOURCES = """
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    write_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (account_id, name_key)
)
"""
_WORKSPACES = """
CREATE TABLE IF NOT EXISTS workspaces (
    account_id TEXT PRIMARY KEY,
    opened_at TEXT NOT NULL
)
"""
_COLUMNS = "id, account_id, name, write_key, created_at, updated_at"
_OLD_COLUMNS = "id, name, name_key, write_key, created_at, updated_at"


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
    account_id: str
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


def private_file(path: Path) -> None:
    """Create ``path`` (and a missing directory, 0700) readable by its owner only (0600)."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)  # an older file may have been created world-readable


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a state file to the current schema (sources per account, workspaces)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(sources)")}
    if columns and "account_id" not in columns:  # before accounts: names were unique overall
        db.execute("BEGIN IMMEDIATE")
        db.execute("ALTER TABLE sources RENAME TO sources_before_accounts")
        db.execute(_SOURCES)
        db.execute(
            f"INSERT INTO sources ({_OLD_COLUMNS}) "  # noqa: S608
            f"SELECT {_OLD_COLUMNS} FROM sources_before_accounts"
        )
        db.execute("DROP TABLE sources_before_accounts")
        db.execute(_WORKSPACES)
        db.execute(
            "INSERT OR IGNORE INTO workspaces SELECT DISTINCT account_id, ? FROM sources", (_now(),)
        )
        db.execute("COMMIT")
    db.execute(_SOURCES)
    db.execute(_WORKSPACES)


class SourceStore:
    """Create, list, rename and delete an account's sources; look them up by id or write key.

    ``account_id`` None (the default of ``list``, ``get``, ``rename``, ``delete``) means any
    account: for the stand-alone receiver and for code acting with the host's authority. The
    management API and pages always pass the caller's account.
    """

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        if path:
            private_file(path)
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
        _migrate(self._db)
        self._opened = {row[0] for row in self._db.execute("SELECT account_id FROM workspaces")}
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

    def list(self, account_id: str | None = None) -> list[Source]:
        """The sources of ``account_id`` (of every account when None), oldest first."""
        return [s for s in self._by_id.values() if _in(s, account_id)]

    def get(self, source_id: str, account_id: str | None = None) -> Source:
        """The source ``source_id`` of ``account_id``; another account's is not found."""
        source = self._by_id.get(source_id)
        if source is None or not _in(source, account_id):
            raise SourceNotFound(f"no source with id {source_id!r}")
        return source

    def by_write_key(self, write_key: str) -> Source | None:
        return self._by_key.get(write_key)

    def first_or_create(self, name: str, account_id: str = IMPLICIT_ACCOUNT) -> Source:
        """The account's oldest source, or a new one named ``name`` when it has none (atomic)."""
        with self._lock:
            self._open(account_id)
            existing = next(iter(self.list(account_id)), None)
            return existing or self._insert(clean_name(name), account_id)

    def open_workspace(self, account_id: str, default_name: str) -> None:
        """The first time an account opens the receiver, give it a source named ``default_name``.

        Only once: an account that deleted all its sources is not given a new one.
        """
        if account_id in self._opened:
            return
        with self._lock:
            if account_id in self._opened:
                return
            self._open(account_id)
            if not self.list(account_id):
                self._insert(clean_name(default_name), account_id)

    def _open(self, account_id: str) -> None:
        """Note that the account's workspace exists; the caller holds the lock."""
        if account_id not in self._opened:
            self._db.execute(
                "INSERT OR IGNORE INTO workspaces VALUES (?, ?)", (account_id, _now())
            )
            self._opened.add(account_id)

    def adopt(self, from_account: str, to_account: str) -> tuple[Source, ...]:
        """Move every source of ``from_account`` to ``to_account`` (a name taken there is
        suffixed), e.g. the implicit account's sources of an older state file to segbridge's
        first account. Returns the moved sources."""
        with self._lock:
            moved: tuple[Source, ...] = ()
            for old in self.list(from_account):
                name = self._free_name(old.name, to_account)
                source = Source(
                    old.id, to_account, name, old.write_key, old.created_at, old.updated_at
                )
                self._db.execute(
                    "UPDATE sources SET account_id = ?, name = ?, name_key = ? WHERE id = ?",
                    (to_account, name, name.casefold(), old.id),
                )
                self._cache(source)
                moved += (source,)
            if moved or from_account in self._opened:
                self._open(to_account)
            return moved

    def _free_name(self, name: str, account_id: str) -> str:
        taken = {s.name.casefold() for s in self.list(account_id)}
        candidate, number = name, 1
        while candidate.casefold() in taken:
            number += 1
            suffix = f" ({number})"
            candidate = name[: MAX_SOURCE_NAME_CHARS - len(suffix)] + suffix
        return candidate

    def create(self, name: object, account_id: str = IMPLICIT_ACCOUNT) -> Source:
        clean = clean_name(name)
        with self._lock:
            self._open(account_id)
            return self._insert(clean, account_id)

    def _insert(self, clean: str, account_id: str) -> Source:
        """Insert a new source; the caller holds the lock."""
        self._check_unique(clean, None, account_id)
        now = _now()
        source = Source(
            "src_" + secrets.token_hex(8), account_id, clean, new_write_key(), now, now
        )
        self._db.execute(
            f"INSERT INTO sources (name_key, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (clean.casefold(), source.id, account_id, source.name, source.write_key, now, now),
        )
        self._cache(source)
        return source

    def rename(self, source_id: str, name: object, account_id: str | None = None) -> Source:
        clean = clean_name(name)
        with self._lock:
            old = self.get(source_id, account_id)
            self._check_unique(clean, source_id, old.account_id)
            source = Source(
                old.id, old.account_id, clean, old.write_key, old.created_at, _now()
            )
            self._db.execute(
                "UPDATE sources SET name = ?, name_key = ?, updated_at = ? WHERE id = ?",
                (clean, clean.casefold(), source.updated_at, source_id),
            )
            self._cache(source)
            return source

    def delete(self, source_id: str, account_id: str | None = None) -> Source:
        with self._lock:
            source = self.get(source_id, account_id)
            self._db.execute("DELETE FROM sources WHERE id = ?", (source_id,))
            del self._by_id[source_id]
            del self._by_key[source.write_key]
            return source

    def _check_unique(self, name: str, own_id: str | None, account_id: str) -> None:
        key = name.casefold()
        for source in self.list(account_id):
            if source.id != own_id and source.name.casefold() == key:
                raise InvalidSourceName(f"a source named {source.name!r} already exists")


def _in(source: Source, account_id: str | None) -> bool:
    return account_id is None or source.account_id == account_id

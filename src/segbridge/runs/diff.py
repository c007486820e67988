"""Diff syncs: send only the records that are new, or new or changed, since the last run.

An import's ``sync`` mode:

- ``all`` (the default): every record is sent, as before; nothing here runs.
- ``changed``: a record is sent when its key was never sent, or when its version (below)
  differs from the one last sent for that key.
- ``new``: a record is sent only when its key was never sent.

What "changed" compares is the record's **version**: a hash of the values of the fields the
import's mapping reads (``mapping_inputs``; every field when the mapping may read any), keyed
by the mapping itself (its call type and spec). A column the mapping does not read cannot make
a record changed; a changed mapping makes every record changed. Because the version is known
before mapping, an unchanged record is never mapped nor serialised: a run compares a group of
records with the snapshot (one query per group and import, which returns only the records
whose version the snapshot does not hold), then maps only what it sends.

A record's key (the export's ``key_field``) is kept as a 64-bit hash (``key_hash``, blake2b)
and its version as a 48-bit one (SQLite stores it in 6 bytes): 14 bytes of hashes a key,
whatever the record. The messageId of a diffed record is salted with its version, so a changed
record goes with a new messageId (Segment would drop a repeated one) and an unchanged one is
never sent again.

This module is pure (no database): the producer, a lane and a preview use it; the snapshot
itself is ``runs.diff_store``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from operator import itemgetter
from typing import Any

import orjson

from segbridge.mapping import mapping_inputs

VERSION_BYTES = 6  # 48 bits: a changed record looks unchanged once in 2.8e14 changes
_JSON = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
VersionOf = Callable[[dict[str, Any]], int]
"""A record's version for one import (raises TypeError/ValueError/RecursionError for a record
that cannot be written as JSON)."""


class SyncMode(StrEnum):
    """Which records an import sends."""

    ALL = "all"
    CHANGED = "changed"
    NEW = "new"


class Verdict(StrEnum):
    """What a diffed record is compared with the snapshot (also its count's name)."""

    NEW = "new"  # its key was never sent: sent
    CHANGED = "changed"  # its version differs from the one last sent: sent in `changed` mode
    UNCHANGED = "unchanged"  # the same version as last sent: not sent


DIFF_COUNTS = ("new", "changed", "unchanged", "deleted")
"""An import's diff counts in a run (``counts.imports[name]``): deleted = keys of the
snapshot that the run did not see."""


_KEY_HASHER = hashlib.blake2b(digest_size=8)  # copied for each key: a copy costs less than
# a new hasher (measured: 0.43 against 0.59 us a key, the same hashes)


def key_hash(key: object) -> int:
    """The record key as a signed 64-bit integer (what the snapshot stores)."""
    hasher = _KEY_HASHER.copy()
    hasher.update(str(key).encode())
    return int.from_bytes(hasher.digest(), "big", signed=True)


def version_hasher(call_type: str, mapping: Mapping[str, Any]) -> VersionOf:
    """How a record's version is computed for an import with this mapping (compiled once)."""
    fields = mapping_inputs(call_type, mapping)
    salt = hashlib.blake2b(orjson.dumps([call_type, mapping], option=_JSON, default=str),
                           digest_size=16).digest()
    keyed = hashlib.blake2b(digest_size=VERSION_BYTES, key=salt)  # copied for each record:
    # the key block is hashed once (measured: 0.55 against 1.04 us a version, the same ones)
    if fields is None:
        def whole(data: dict[str, Any]) -> int:
            return _version(orjson.dumps(data, option=_JSON, default=str), keyed)
        return whole
    names = tuple(sorted(fields))
    values = itemgetter(*names) if len(names) > 1 else _one_or_none(names)

    def chosen(data: dict[str, Any]) -> int:
        try:  # every field there (a CSV row): its values in order
            body = orjson.dumps(values(data), option=_JSON, default=str)
        except KeyError:  # some missing: those present, by name (never the same JSON)
            body = orjson.dumps({name: data[name] for name in names if name in data},
                                option=_JSON, default=str)
        return _version(body, keyed)
    return chosen


def _one_or_none(names: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """``itemgetter`` for one name or none, giving a tuple as for several."""
    if not names:
        return lambda _data: ()
    name = names[0]
    return lambda data: (data[name],)


def _version(body: bytes, keyed: hashlib.blake2b) -> int:
    hasher = keyed.copy()
    hasher.update(body)
    return int.from_bytes(hasher.digest(), "big", signed=True)


Differences = dict[int, int | None]
"""What comparing records with a snapshot finds: for each record (by its index in the
compared list) whose version the snapshot does not hold for its key, the version it holds
(None: the key was never sent). A record not listed is unchanged."""


@dataclass(frozen=True)
class SnapshotCheck:
    """What a producer compares its records with: each diffed import's snapshot (by the
    import's index in the flow) and how to compare records with one (``runs.diff_reader``; a
    lane opens its own connection to the database)."""

    compare: Callable[[int, Sequence[int], Sequence[int]], Differences]  # snapshot, key
    # hashes, versions (one of each per record) -> the records that differ
    snapshots: Mapping[int, int]
    close: Callable[[], None] | None = None  # the lane's own connection, closed at its end


def verdict(differences: Differences, index: int) -> Verdict:
    """How the record at ``index`` of a compared list compares with the snapshot."""
    if index not in differences:
        return Verdict.UNCHANGED
    return Verdict.NEW if differences[index] is None else Verdict.CHANGED


def is_diffed(step: object) -> bool:
    """Whether an import of a stored flow document sends only changed or new records."""
    return isinstance(step, Mapping) and step.get("sync", SyncMode.ALL) != SyncMode.ALL


def is_sent(mode: SyncMode, found: Verdict) -> bool:
    """Whether a record with this verdict is sent by an import in ``mode``."""
    return found is Verdict.NEW or (found is Verdict.CHANGED and mode is SyncMode.CHANGED)


def missing_key(key_field: str) -> str:
    """The record error of a diffed record without a key."""
    nested = (f" (key_field names a top-level field: '{key_field}' is not followed as a path "
              f"into '{key_field.split('.', 1)[0]}'; map or export the key at the top level)"
              if "." in key_field else "")
    return (f"the record has no value in its key field '{key_field}'{nested}; a sync of "
            "changed or new records compares each record by its key: give every record a "
            "key, or use sync: all")

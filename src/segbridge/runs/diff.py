"""Diff syncs: send only the records that are new, or new or changed, since the last run.

An import's ``sync`` mode:

- ``all`` (the default): every record is sent, as before; nothing here runs.
- ``changed``: a record is sent when its key was never sent, or when its call differs from
  the call last sent for that key.
- ``new``: a record is sent only when its key was never sent.

What "changed" compares is the **call as mapped, before its messageId** (``call_hash``): a
column the mapping does not read cannot make a record changed, and neither can segbridge's
own fields (the messageId; ``sentAt`` is set per batch at delivery). A timestamp the mapping
sets is part of the call, so a record whose mapped time moved is changed.

A record's key (the export's ``key_field``) and its call are kept as two 64-bit hashes
(``key_hash``, ``call_hash``; blake2b): 16 bytes a key, whatever the record. The messageId of
a diffed record is salted with its call hash, so a changed record goes with a new messageId
(Segment would drop a repeated one) and an unchanged one is never sent again.

This module is pure (no database): the producer, a lane and a preview use it; the snapshot
itself is ``runs.diff_store``.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

import orjson


class SyncMode(StrEnum):
    """Which records an import sends."""

    ALL = "all"
    CHANGED = "changed"
    NEW = "new"


class Verdict(StrEnum):
    """What a diffed record is compared with the snapshot (also its count's name)."""

    NEW = "new"  # its key was never sent: sent
    CHANGED = "changed"  # its call differs from the one last sent: sent in `changed` mode
    UNCHANGED = "unchanged"  # the same call as last sent: not sent


DIFF_COUNTS = ("new", "changed", "unchanged", "deleted")
"""An import's diff counts in a run (``counts.imports[name]``): deleted = keys of the
snapshot that the run did not see."""


def key_hash(key: object) -> int:
    """The record key as a signed 64-bit integer (what the snapshot stores)."""
    digest = hashlib.blake2b(str(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def call_hash(call: dict[str, Any]) -> int:
    """The mapped call (without its messageId) as a signed 64-bit integer; keys sorted, so
    reordering a mapping's fields does not make every record changed."""
    return hashed_call(call)[1]


def hashed_call(call: dict[str, Any]) -> tuple[bytes, int]:
    """The call's JSON (keys sorted) and its hash: the JSON is written once, hashed, and
    becomes the call's body (``with_message_id``)."""
    body = orjson.dumps(call, option=orjson.OPT_SORT_KEYS, default=str)
    digest = hashlib.blake2b(body, digest_size=8).digest()
    return body, int.from_bytes(digest, "big", signed=True)


def with_message_id(body: bytes, message_id: str) -> bytes:
    """A call's JSON object with its messageId added last (an exact-size copy: no buffer of
    orjson's is kept). A messageId is ``sb-`` and hex digits: nothing to escape."""
    tail = b'"messageId":"' + message_id.encode() + b'"}'
    return (body[:-1] + b"," + tail) if body != b"{}" else b"{" + tail


def verdict(sent: int | None, current: int) -> Verdict:
    """How a record compares with the snapshot's call hash ``sent`` (None: key never sent)."""
    if sent is None:
        return Verdict.NEW
    return Verdict.UNCHANGED if sent == current else Verdict.CHANGED


def is_sent(mode: SyncMode, found: Verdict) -> bool:
    """Whether a record with this verdict is sent by an import in ``mode``."""
    return found is Verdict.NEW or (found is Verdict.CHANGED and mode is SyncMode.CHANGED)


def missing_key(key_field: str) -> str:
    """The record error of a diffed record without a key."""
    return (f"the record has no value in its key field '{key_field}'; a sync of changed or new "
            "records compares each record by its key: give every record a key, or use "
            "sync: all")

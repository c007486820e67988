"""Stable messageIds: the same record of the same flow and import always gets the same id, so
a retried batch or a re-run of the same records is deduplicated by Segment.

id = "sb-" + blake2b-128(flow | import | call type | salt | record key), where the record key is
the chosen key field's value, else the record's position and a hash of its content. A run
asked to send fresh ids uses its run id as salt. An import that sends only changed or new
records (``runs.diff``) adds the record's version to the key, and for a changed record the
version it replaces: a changed record gets a new id, also when it changes back to a version
sent before (A, then B, then A again: Segment would drop a third id equal to the first). What
the snapshot holds moves only when a run finishes, so a call sent again (a retry with its
stored id, a run after a failed one, the next run after a failed call) keeps its id.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


class MessageIds:
    def __init__(self, flow_id: str, import_name: str, call_type: str, salt: str = "") -> None:
        prefix = f"{flow_id}|{import_name}|{call_type}|{salt}|".encode()
        self._base = hashlib.blake2b(prefix, digest_size=16)

    def by_key(self, key: object) -> str:
        digest = self._base.copy()
        digest.update(b"k:" + str(key).encode())
        return "sb-" + digest.hexdigest()

    def by_version(self, key: object, version: int, replaced: int | None = None) -> str:
        """The id of one version of a keyed record (``runs.diff``), sent in place of the
        version ``replaced`` (None: the key was never sent, and the id is the one earlier
        versions of segbridge gave)."""
        digest = self._base.copy()
        digest.update(b"k:" + str(key).encode() + b"|v:%d" % version)
        if replaced is not None:
            digest.update(b"|r:%d" % replaced)
        return "sb-" + digest.hexdigest()

    def by_position(self, position: int, data: dict[str, Any]) -> str:
        digest = self._base.copy()
        digest.update(b"p:%d:" % position)
        digest.update(orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str))
        return "sb-" + digest.hexdigest()

"""Stable messageIds: the same record of the same flow and import always gets the same id, so
a retried batch or a re-run of the same records is deduplicated by Segment.

id = "sb-" + blake2b-128(flow | import | call type | salt | record key), where the record key is
the chosen key field's value, else the record's position and a hash of its content. A run
asked to send fresh ids uses its run id as salt. An import that sends only changed or new
records (``runs.diff``) adds the record's version to the key: a changed record gets a new id.
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

    def by_version(self, key: object, version: int) -> str:
        """The id of one version of a keyed record (``runs.diff``)."""
        digest = self._base.copy()
        digest.update(b"k:" + str(key).encode() + b"|v:%d" % version)
        return "sb-" + digest.hexdigest()

    def by_position(self, position: int, data: dict[str, Any]) -> str:
        digest = self._base.copy()
        digest.update(b"p:%d:" % position)
        digest.update(orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str))
        return "sb-" + digest.hexdigest()

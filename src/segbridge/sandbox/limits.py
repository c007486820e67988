"""Segment's tracking API limits and the receiver's own bounds, as named constants."""

from __future__ import annotations

from typing import Final

# Segment's documented limits (KB read as 1,024 bytes).
MAX_CALL_BYTES: Final = 32 * 1024  # one call, alone or inside a batch (JSON as sent)
MAX_BATCH_BYTES: Final = 500 * 1024  # one /batch or /import request (decompressed JSON)
MAX_BATCH_CALLS: Final = 2_500  # above this Segment answers 200 and drops the whole batch
MAX_MESSAGE_ID_CHARS: Final = 100
DEDUP_WINDOW_SECONDS: Final = 24 * 60 * 60

# Write keys.
WRITE_KEY_CHARS: Final = 32  # generated keys, as long as real Segment keys
MIN_WRITE_KEY_CHARS: Final = 8  # shorter: 200 and dropped (Segment), 401 in strict mode

# Allowance for the gzip header and trailer when bounding a compressed body before inflating it.
GZIP_SLACK_BYTES: Final = 1024

CALL_TYPES: Final = frozenset({"identify", "track", "page", "screen", "group", "alias"})
BATCH_PATHS: Final = frozenset({"batch", "import"})
# analytics.js (analytics-next) posts to one-letter paths: /v1/t is /v1/track, /v1/b a batch.
SHORT_PATHS: Final = {
    "t": "track", "p": "page", "i": "identify", "g": "group", "a": "alias", "s": "screen",
    "b": "batch",
}

# Source names.
MAX_SOURCE_NAME_CHARS: Final = 100
DEFAULT_SOURCE_NAME: Final = "My first source"

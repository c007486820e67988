"""Segment's documented limits and endpoints, in one place (see docs/segment.md)."""

from __future__ import annotations

from typing import Final

MAX_CALL_BYTES: Final = 32 * 1024
"""A single call, alone or inside a batch, may be at most 32 KB of JSON."""

MAX_BATCH_BYTES: Final = 500 * 1024
"""A /v1/batch request body may be at most 500 KB."""

BATCH_CUT_BYTES: Final = 475_000
"""Where segbridge cuts a batch: below MAX_BATCH_BYTES with a margin for the envelope."""

MAX_BATCH_CALLS: Final = 2_500
"""Above this many calls in one batch Segment answers 200 and drops them."""

MAX_MESSAGE_ID_CHARS: Final = 100

REGION_BASE_URLS: Final = {
    "us": "https://api.segment.io",
    "eu": "https://events.eu1.segmentapis.com",
}
SETTINGS_CDN_BASE_URL: Final = "https://cdn.segment.com"

CALL_TYPES: Final = ("identify", "track", "page", "screen", "group", "alias")

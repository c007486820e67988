"""segbridge's built-in Segment-compatible receiver: sources, write keys and a live Debugger.

Nobody can reach the real Segment from a test, so segbridge ships a faithful stand-in for
Segment's ingestion side. It is mounted in the segbridge server at ``/sandbox`` and can run
alone (``segbridge sandbox``).

* Tracking API (``POST /v1/identify|track|page|screen|group|alias|batch|import`` and
  analytics.js's ``/v1/t|p|i|g|a|s|b``, with or without a trailing slash), as Segment
  behaves: write key by HTTP Basic or ``writeKey``; gzip; ``text/plain`` bodies; 32 KB per
  call, 500 KB per batch, 2,500 calls per batch (more: 200 and dropped); 400 only for a body
  it cannot read (not JSON, wrong shape, too large), with Segment's error body (``code`` and
  ``message`` at the top level); a bad call (unknown type, a field of the wrong type, a
  messageId over 100 characters), a call without userId/anonymousId, a track without event,
  a duplicate messageId (per workspace), a missing, short or unknown write key: 200 and
  dropped, shown with the reason ("segment" mode), or refused with 400/401 ("strict", as
  RudderStack); messageId, receivedAt and a skew-corrected timestamp stamped as Segment does.
* Source settings (``GET /v1/projects/<writeKey>/settings``): 200 for a known key, pointing
  analytics.js back here; 404 else. analytics.js itself (analytics-next, vendored) at
  Segment's CDN path ``/analytics.js/v1/<writeKey>/analytics.min.js``, and a Try it page.
* Workspace and Debugger: a JSON management API for sources, each source's last N events
  (search, live server-sent events, Pretty and Raw views), counters and drop log; pages.
* Faults on demand (admin only): 500/503/429 shares, latency, dropped connections, downtime.
* Optional NDJSON archive of every accepted event, fsynced per request.

Module map: ``limits`` (Segment's numbers), ``wire`` (bounded body, gzip, JSON), ``calls``
(validation), ``timestamps``, ``dedup``, ``recorder``, ``debugger``, ``archive``, ``faults``,
``tracking`` (raw ASGI endpoints), ``analytics_js`` (the browser library), ``management``
and ``pages`` (adapters), ``auth``, ``store`` (SQLite), ``app`` (assembly), ``serving``
(uvicorn, ending live streams at shutdown), ``cli``.
"""

from __future__ import annotations

from segbridge.sandbox.app import (
    LocalSegment,
    create_local_segment,
    create_sandbox_app,
    ensure_default_source,
)
from segbridge.sandbox.cli import sandbox_command
from segbridge.sandbox.config import SandboxConfig, UnknownKeyMode
from segbridge.sandbox.faults import FaultSettings
from segbridge.sandbox.pages import HostedPage, PageLayout
from segbridge.sandbox.state import SandboxState
from segbridge.sandbox.store import Source, SourceStore

__all__ = [
    "FaultSettings",
    "HostedPage",
    "LocalSegment",
    "PageLayout",
    "SandboxConfig",
    "SandboxState",
    "Source",
    "SourceStore",
    "UnknownKeyMode",
    "create_local_segment",
    "create_sandbox_app",
    "ensure_default_source",
    "sandbox_command",
]

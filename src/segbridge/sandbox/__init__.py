"""segbridge's built-in Segment-compatible receiver: sources, write keys and a live Debugger.

Nobody can reach the real Segment from a test, so segbridge ships a faithful stand-in for
Segment's ingestion side. It is mounted in the segbridge server at ``/sandbox`` and can run
alone (``segbridge sandbox``).

* Tracking API (``POST /v1/identify|track|page|screen|group|alias|batch|import``), as Segment
  behaves: write key by HTTP Basic or ``writeKey``; gzip; 32 KB per call, 500 KB per batch,
  2,500 calls per batch (more: 200 and dropped); 200 for everything but JSON errors, bad
  shapes and oversized bodies (400); unknown keys answered 200 and dropped ("segment" mode)
  or 401 ("strict", as RudderStack); calls without userId/anonymousId, tracks without event
  and duplicate messageIds answered 200, dropped and shown with the reason; messageId,
  receivedAt and a skew-corrected timestamp stamped as Segment does.
* Source settings (``GET /v1/projects/<writeKey>/settings``): 200 for a known key, 404 else.
* Workspace and Debugger: a JSON management API for sources, each source's last N events
  (search, live server-sent events, Pretty and Raw views), counters and drop log; pages.
* Faults on demand (admin only): 500/503/429 shares, latency, dropped connections, downtime.
* Optional NDJSON archive of every accepted event, fsynced per request.

Module map: ``limits`` (Segment's numbers), ``wire`` (bounded body, gzip, JSON), ``calls``
(validation), ``timestamps``, ``dedup``, ``recorder``, ``debugger``, ``archive``, ``faults``,
``tracking`` (raw ASGI endpoints), ``management`` and ``pages`` (adapters), ``auth``,
``store`` (SQLite), ``app`` (assembly), ``cli``.
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

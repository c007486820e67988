"""A Test connection result as the pane shows it, and where to see the ping in a Debugger.

For the local Segment mounted in this server, the write key that was just submitted names a
source of the receiver, so the link goes straight to that source's Debugger, searching the
ping's messageId. For any other receiver, and for Segment itself, the pane says where to look.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request

if TYPE_CHECKING:
    from segbridge.sandbox import LocalSegment
    from segbridge.sandbox.store import Source

SANDBOX_PREFIX = "/sandbox"
SANDBOX_SOURCES = f"{SANDBOX_PREFIX}/sources"
SEGMENT_DEBUGGER_PATH = "Connections > Sources > your source > Debugger"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_OUTCOME_TONES = {"recognised": "ok", "not_recognised": "warn"}


@dataclass(frozen=True)
class CheckLine:
    label: str
    detail: str
    tone: str  # ok | warn | neutral


@dataclass(frozen=True)
class DebuggerLink:
    """Where to find the ping: a link into the local Segment, or words for elsewhere."""

    url: str | None
    text: str


@dataclass(frozen=True)
class ResultView:
    ok: bool
    message: str
    cause: str | None
    status: int | None
    latency_ms: float | None
    message_id: str | None
    endpoint: str
    checks: list[CheckLine]
    debugger: DebuggerLink | None
    at: str | None = None


def result_view(result: Mapping[str, Any], request: Request | None = None,
                write_key: str | None = None, *, account_id: str | None = None) -> ResultView:
    """A test result for the pane; the Debugger link names a local source only when it is
    the viewer's account's own (``account_id``)."""
    ok = bool(result.get("ok"))
    checks = [CheckLine(str(c.get("label", "")), str(c.get("detail", "")),
                        _OUTCOME_TONES.get(str(c.get("outcome")), "neutral"))
              for c in result.get("checks") or []]
    latency = result.get("latency_ms")
    return ResultView(
        ok=ok, message=str(result.get("message") or ""), cause=result.get("cause"),
        status=result.get("status"),
        latency_ms=float(latency) if isinstance(latency, int | float) else None,
        message_id=result.get("message_id"), endpoint=str(result.get("endpoint") or ""),
        checks=checks, at=result.get("at"),
        debugger=_debugger(result, request, write_key, account_id) if ok else None,
    )


def _debugger(result: Mapping[str, Any], request: Request | None,
              write_key: str | None, account_id: str | None) -> DebuggerLink:
    endpoint = str(result.get("endpoint") or "")
    message_id = str(result.get("message_id") or "")
    if request is not None and is_local_sandbox(endpoint, request):
        source = sandbox_source(request, write_key, account_id) if write_key else None
        if source is None:
            return DebuggerLink(SANDBOX_SOURCES, "Open the Local Segment's sources and choose "
                                                 "the source with this write key.")
        query = urlencode({"q": message_id})
        return DebuggerLink(f"{SANDBOX_SOURCES}/{source.id}/debugger?{query}",
                            f"The ping is in the Debugger of '{source.name}'.")
    hint = str(result.get("debugger_hint") or "")
    return DebuggerLink(None, hint or f"In Segment, open {SEGMENT_DEBUGGER_PATH} and look for "
                                      f"messageId {message_id}.")


def is_local_sandbox(endpoint: str, request: Request) -> bool:
    """Is this endpoint the local Segment mounted in this very server?"""
    parts = urlsplit(endpoint)
    if not parts.path.startswith(f"{SANDBOX_PREFIX}/v1/"):
        return False
    here = request.url
    if parts.netloc == here.netloc:
        return True
    return (parts.hostname in _LOOPBACK and here.hostname in _LOOPBACK
            and (parts.port or 80) == (here.port or 80))


def sandbox_source(request: Request, write_key: str, account_id: str | None) -> Source | None:
    """The local Segment's source with this write key, if the receiver is mounted and the
    source is the viewer's account's (another account's source is not even named)."""
    segment = local_segment(request)
    if segment is None or account_id is None:
        return None
    source = segment.source_for_key(write_key)
    if source is None or source.account_id != account_id:
        return None
    return source


def local_sandbox_url(request: Request) -> str | None:
    """This server's Local Segment, as a custom endpoint URL (None when it is not mounted)."""
    if local_segment(request) is None:
        return None
    return str(request.base_url).rstrip("/") + SANDBOX_PREFIX


def local_segment(request: Request) -> LocalSegment | None:
    """The local Segment the server mounted (``segbridge.assembly``), None when not enabled."""
    segment: LocalSegment | None = getattr(request.app.state, "local_segment", None)
    return segment

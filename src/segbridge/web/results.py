"""A Test connection result as the pane shows it, and where to see the ping in a Debugger.

For the local Segment mounted in this server, the write key that was just submitted names a
source of the receiver, so the link goes straight to that source's Debugger, searching the
ping's messageId. For any other receiver, and for Segment itself, the pane says where to look.

A ping that passed while the write key could not be confirmed (Segment accepts any key) is a
warning, not "works": its heading says the receiver was reached and the key not confirmed.
Where this server runs a Local Segment, a failure to find Segment (no internet) says how to
use it, with its real address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request

from segbridge.apps.segment.app import LOCAL_SEGMENT_EXAMPLE
from segbridge.apps.segment.limits import REGION_BASE_URLS

if TYPE_CHECKING:
    from segbridge.sandbox import LocalSegment
    from segbridge.sandbox.store import Source

SANDBOX_PREFIX = "/sandbox"
SANDBOX_SOURCES = f"{SANDBOX_PREFIX}/sources"
SEGMENT_DEBUGGER_PATH = "Connections > Sources > your source > Debugger"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_OUTCOME_TONES = {"recognised": "ok", "not_recognised": "warn", "rejected": "fail",
                  "unknown": "fail"}
_SEGMENT_HOSTS = frozenset(urlsplit(url).hostname for url in REGION_BASE_URLS.values())


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
    tone: str = "ok"  # ok | warn (reached, the key not confirmed) | fail
    heading: str = "The connection works"
    advice: str | None = None  # what to do instead (e.g. use this server's Local Segment)


def result_view(result: Mapping[str, Any], request: Request | None = None,
                write_key: str | None = None, *, account_id: str | None = None) -> ResultView:
    """A test result for the pane; the Debugger link names a local source only when it is
    the viewer's account's own (``account_id``)."""
    ok = bool(result.get("ok"))
    checks = [CheckLine(str(c.get("label", "")), str(c.get("detail", "")),
                        _tone(str(c.get("outcome")), ok))
              for c in result.get("checks") or []]
    latency = result.get("latency_ms")
    endpoint = str(result.get("endpoint") or "")
    sandbox = local_sandbox_url(request) if request is not None else None
    tone = "fail" if not ok else ("warn" if any(c.tone == "warn" for c in checks) else "ok")
    return ResultView(
        ok=ok, message=with_local_url(str(result.get("message") or ""), sandbox),
        cause=result.get("cause"), status=result.get("status"),
        latency_ms=float(latency) if isinstance(latency, int | float) else None,
        message_id=result.get("message_id"), endpoint=endpoint,
        checks=checks, at=result.get("at"),
        debugger=_debugger(result, request, write_key, account_id) if ok else None,
        tone=tone, heading=_heading(tone, endpoint),
        advice=_advice(result, endpoint, sandbox),
    )


def _tone(outcome: str, ok: bool) -> str:
    """A key nobody recognised is a warning beside a passed ping, a failure beside a failed one."""
    tone = _OUTCOME_TONES.get(outcome, "neutral")
    return "fail" if tone == "warn" and not ok else tone


def is_segment(endpoint: str) -> bool:
    """Is this endpoint Segment itself (a region's Tracking API), not a custom receiver?"""
    return urlsplit(endpoint).hostname in _SEGMENT_HOSTS


def _heading(tone: str, endpoint: str) -> str:
    if tone == "fail":
        return "The connection failed"
    if tone == "warn":
        where = "Segment" if is_segment(endpoint) else "The receiver"
        return f"{where} was reached; the write key could not be confirmed"
    return "The connection works"


def _advice(result: Mapping[str, Any], endpoint: str, sandbox: str | None) -> str | None:
    """No internet: Segment's host was not found, and this server runs a Local Segment."""
    if result.get("ok") or result.get("cause") != "dns" or not sandbox:
        return None
    if endpoint and not is_segment(endpoint):
        return None
    return (f"No internet here? Use this server's Local Segment: set Custom endpoint URL "
            f"(under Advanced settings) to {sandbox} and use the write key of one of its "
            f"sources ({sandbox}/sources).")


def with_local_url(text: str, sandbox_url: str | None) -> str:
    """``text`` with the example Local Segment address replaced by this server's real one."""
    return text.replace(LOCAL_SEGMENT_EXAMPLE, sandbox_url) if sandbox_url else text


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

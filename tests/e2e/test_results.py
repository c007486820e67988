"""Where the pane tells a user to look for the test ping (no browser, no server)."""

from __future__ import annotations

from typing import Any

from segbridge.web.results import result_view

SEGMENT_HINT = ("Open Segment: Connections > Sources > your source > Debugger and look for user "
                "segbridge-connection-test, messageId m-1.")


def ping(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"ok": True, "endpoint": endpoint, "status": 200, "latency_ms": 41.6,
            "message_id": "m-1", "cause": None, "message": "The ping was accepted (200) in 42 ms.",
            "checks": [{"name": "write_key", "outcome": "not_recognised",
                        "label": "Write key: not recognised (warning)", "detail": "d"}],
            "debugger_hint": SEGMENT_HINT, **extra}


def test_real_segment_says_where_its_debugger_is() -> None:
    view = result_view(ping("https://api.segment.io/v1/identify"))
    assert view.debugger is not None and view.debugger.url is None
    assert "Connections > Sources > your source > Debugger" in view.debugger.text
    assert view.latency_ms == 41.6 and view.message_id == "m-1"
    assert [(c.label, c.tone) for c in view.checks] == [
        ("Write key: not recognised (warning)", "warn")]


def test_another_receiver_gets_its_own_hint() -> None:
    hint = "Open the receiver's Debugger for this source and look for messageId m-1."
    view = result_view(ping("https://hosted.rudderlabs.com/v1/identify", debugger_hint=hint))
    assert view.debugger is not None and view.debugger.url is None
    assert view.debugger.text == hint


def test_a_failure_has_no_debugger_link() -> None:
    view = result_view(ping("http://127.0.0.1:9/v1/identify", ok=False, cause="refused",
                            message="Nothing answers at 127.0.0.1:9.", checks=[]))
    assert view.debugger is None and not view.ok and view.cause == "refused"

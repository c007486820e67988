"""The Segment application: settings, validation, Test connection (the ping) and the sink
that imports send their batches through (``sink.py``)."""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx

from segbridge.apps.base import (
    Capability,
    Check,
    ConnectionConfig,
    PingResult,
    SettingKind,
    SettingSpec,
    SinkRequest,
)
from segbridge.apps.segment.client import TrackingClient, stamp, tls_context
from segbridge.apps.segment.endpoints import Endpoint, endpoint_problem, resolve_endpoint
from segbridge.apps.segment.sink import SegmentSink
from segbridge.core.access import Targets
from segbridge.core.errors import ApplicationError, FieldProblem

TEST_USER_ID = "segbridge-connection-test"
LOCAL_SEGMENT_EXAMPLE = "http://127.0.0.1:8000/sandbox"
"""The example custom endpoint in help and messages (the web pages show the real address)."""
WRITE_KEY_HELP = (
    "In Segment: Connections > Sources > your source > Settings > API keys; copy the Write key. "
    "It is encrypted with AES-256 and never shown again; re-enter it on every edit."
)


class SegmentApplication:
    """Segment: import records as identify, track, page, screen, group and alias calls."""

    key = "segment"
    name = "Segment"
    description = "Send identify, track, page, screen, group and alias calls to a Segment source."
    capabilities = frozenset({Capability.PING, Capability.IMPORT, Capability.LISTEN})
    settings: tuple[SettingSpec, ...] = (
        SettingSpec("write_key", "Write key", SettingKind.SECRET, required=True,
                    help=WRITE_KEY_HELP, max_length=200),
        SettingSpec("region", "Region", SettingKind.CHOICE, advanced=True, default="us",
                    choices=(("us", "US (api.segment.io)"),
                             ("eu", "EU (events.eu1.segmentapis.com)")),
                    help="The region of your Segment workspace. An EU source must use EU."),
        SettingSpec("endpoint", "Custom endpoint URL", SettingKind.URL, advanced=True,
                    help="Only for a Segment-compatible receiver, e.g. segbridge's local Segment "
                         f"({LOCAL_SEGMENT_EXAMPLE}) or a RudderStack data plane. "
                         "Leave empty to send to Segment."),
    )

    def validate(self, values: Mapping[str, str | None]) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        endpoint = values.get("endpoint")
        if endpoint:
            reason = endpoint_problem(endpoint)
            if reason:
                problems.append(FieldProblem("settings.endpoint", reason))
            if values.get("region") == "eu":
                problems.append(FieldProblem(
                    "settings.region",
                    "choose either the EU region or a custom endpoint URL, not both"))
        return problems

    def targets(self, values: Mapping[str, str | None]) -> Targets:
        endpoint = resolve_endpoint(values.get("region"), values.get("endpoint"))
        return Targets(urls=(("settings.endpoint", endpoint.url("")),))

    def endpoint(self, config: ConnectionConfig) -> Endpoint:
        return resolve_endpoint(config.values.get("region"), config.values.get("endpoint"))

    def ping(self, config: ConnectionConfig, *, timeout: float) -> PingResult:
        endpoint = self.endpoint(config)
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False,
                          verify=tls_context()) as http:
            client = TrackingClient(endpoint, config.secrets["write_key"], http)
            return _ping(client, endpoint)

    def open_sink(self, request: SinkRequest) -> SegmentSink:
        return SegmentSink(request.http, self.endpoint(request.connection),
                           request.connection.secrets["write_key"], request.governor,
                           request.pool, request.reachability, request.policy, request.sleep)


def _ping(client: TrackingClient, endpoint: Endpoint) -> PingResult:
    call = stamp({"userId": TEST_USER_ID, "traits": {"name": "segbridge connection test"}})
    message_id = str(call["messageId"])
    url = endpoint.url("identify")
    started = time.perf_counter()
    try:
        response = client.send("identify", call)
    except ApplicationError as exc:
        return PingResult(
            ok=False, endpoint=url, status=exc.status, latency_ms=_since(started),
            message_id=message_id, cause=exc.cause, message=_failure_message(exc, endpoint),
            checks=(_check_write_key(client, endpoint),)
            if exc.cause not in ("refused", "dns") else (),
        )
    latency = _since(started)
    check = _check_write_key(client, endpoint)
    accepted = f"The ping was accepted ({response.status_code}) in {latency:.0f} ms"
    if check.outcome == "rejected":
        return PingResult(
            ok=False, endpoint=url, status=None, latency_ms=latency,
            message_id=message_id, cause="write_key_rejected", checks=(check,),
            message=f"{accepted}, but the receiver rejects this write key ({check.detail}). "
                    "Copy the write key again from the source's Settings > API keys.")
    if check.outcome == "unknown":
        return PingResult(
            ok=False, endpoint=url, status=None, latency_ms=latency,
            message_id=message_id, cause="key_unknown", checks=(check,),
            message="The receiver has no source with this write key, and it knows every key "
                    "of its sources (a segbridge Local Segment): the write key is wrong. Copy "
                    "it again from the Local Segment: Sources > your source > Settings > API "
                    "keys.")
    return PingResult(
        ok=True, endpoint=url, status=response.status_code, latency_ms=latency,
        message_id=message_id, message=_accepted_message(accepted, check, endpoint),
        checks=(check,), debugger_hint=_debugger_hint(endpoint, message_id),
    )


def _accepted_message(accepted: str, check: Check, endpoint: Endpoint) -> str:
    if check.outcome != "not_recognised":
        return f"{accepted}."
    where = "The receiver" if endpoint.custom else "Segment"
    return (f"{where} was reached: {accepted[0].lower()}{accepted[1:]}, but the write key "
            "could not be confirmed (calls with an unknown key are accepted too, then dropped). "
            "Look for the ping in the source's Debugger.")


def _failure_message(exc: ApplicationError, endpoint: Endpoint) -> str:
    if exc.cause == "dns" and not endpoint.custom:
        return (f"{exc.message} Without internet access, use this server's Local Segment: "
                "set the Custom endpoint URL (Advanced settings) to this server's address "
                f"followed by /sandbox (e.g. {LOCAL_SEGMENT_EXAMPLE}) and use the write key "
                "of one of its sources.")
    return exc.message


KNOWS_EVERY_KEY = "X-Receiver-Knows-Every-Key"  # a receiver that says: unknown means wrong


def _check_write_key(client: TrackingClient, endpoint: Endpoint) -> Check:
    """Ask the source-settings endpoint whether it knows the key (Segment answers 200 anyway)."""
    try:
        response = client.fetch_source_settings()
    except ApplicationError as exc:
        return Check("write_key", "could_not_check",
                     "Write key: could not check", f"The source-settings endpoint: {exc.message}")
    status = response.status_code
    if status == 200:
        return Check("write_key", "recognised", "Write key: recognised",
                     "The source-settings endpoint knows a source with this write key.")
    if status in (401, 403):
        return Check("write_key", "rejected", "Write key: rejected",
                     f"its source-settings endpoint answered {status}")
    if status == 404 and response.headers.get(KNOWS_EVERY_KEY) == "true":
        return Check("write_key", "unknown", "Write key: unknown",
                     "The receiver knows every key of its sources and has no source with "
                     "this one.")
    if status == 404:
        return Check("write_key", "not_recognised", "Write key: not recognised (warning)",
                     _not_recognised(endpoint))
    return Check("write_key", "could_not_check", "Write key: could not check",
                 f"The source-settings endpoint answered {status}.")


def _not_recognised(endpoint: Endpoint) -> str:
    if endpoint.custom:
        return ("The receiver's source-settings endpoint does not know this write key, yet it "
                "accepted the ping. Check that the ping reached the source's Debugger.")
    return ("Segment's source-settings endpoint does not know this write key. Segment accepts "
            "calls with any key and drops those of an unknown one silently; some server-side "
            "sources answer 404 here too. Open Connections > Sources > your source > Debugger "
            "and look for the ping.")


def _debugger_hint(endpoint: Endpoint, message_id: str) -> str:
    where = ("the receiver's Debugger for this source" if endpoint.custom else
             "Segment: Connections > Sources > your source > Debugger")
    return f"Open {where} and look for user {TEST_USER_ID}, messageId {message_id}."


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0

"""What an alert says, and the one error delivery raises.

A notification names the flow (or connection), the run (id, status, counts, message) and a
link to it: never a secret, never a record's data (run messages name fields and reasons,
not values; they are clipped anyway)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from segbridge.core.errors import SegbridgeError

MESSAGE_CHARS = 500


class Condition(StrEnum):
    """What an alert is about; stored in ``alerts_sent.condition``."""

    RUN_FAILED = "run_failed"
    RUN_ERRORS = "run_errors"  # completed with errors above the account's threshold
    CONNECTION_OFFLINE = "connection_offline"
    CONNECTION_ONLINE = "connection_online"
    TEST = "test"


class DeliveryFailed(SegbridgeError):
    """An email or webhook post did not go out; the message is safe to log and show."""

    code = "delivery_failed"
    http_status = 502


@dataclass(frozen=True)
class Notification:
    condition: Condition
    subject: str
    text: str


def run_notification(condition: Condition, base_url: str, flow_name: str, run_id: str,
                     status: str, counts: dict[str, Any], message: str | None) -> Notification:
    what = "failed" if condition == Condition.RUN_FAILED else "completed with errors"
    flow_name = _one_line(flow_name)
    shown = {k: counts.get(k, 0) for k in ("exported", "sent", "failed", "ignored")}
    lines = [f"segbridge: run {run_id} of flow '{flow_name}' {what}.",
             f"Status: {status}",
             "Counts: " + ", ".join(f"{k} {v}" for k, v in shown.items())]
    if message:
        lines.append(f"Message: {_clip(message)}")
    lines.append(f"Open the run: {base_url}/runs/{run_id}")
    return Notification(condition, f"[segbridge] Flow '{flow_name}': run {what}",
                        "\n".join(lines))


def connection_notification(condition: Condition, base_url: str, name: str,
                            connection_id: str, cause: str | None) -> Notification:
    what = "went offline" if condition == Condition.CONNECTION_OFFLINE else "is back online"
    name = _one_line(name)
    lines = [f"segbridge: connection '{name}' ({connection_id}) {what}."]
    if cause and condition == Condition.CONNECTION_OFFLINE:
        lines.append(f"Last test: {_clip(cause)}")
    if condition == Condition.CONNECTION_OFFLINE:
        lines.append("Runs sending to it pause and resume when it is back.")
    lines.append(f"Open connections: {base_url}/connections")
    return Notification(condition, f"[segbridge] Connection '{name}' {what}", "\n".join(lines))


def trial_notification(base_url: str, actor: str) -> Notification:
    return Notification(Condition.TEST, "[segbridge] Test alert",
                        f"segbridge: a test alert sent by {actor}. Alerts of this account "
                        f"reach this address.\nOpen segbridge: {base_url}")


def _one_line(text: str) -> str:
    """Names go into an email's Subject header: no line breaks (header injection)."""
    return " ".join(text.split())[:100]


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 3] + "..."

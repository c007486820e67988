"""Drive one official Python client against a receiver, in its own process (so two versions of
``segment.analytics`` never meet in one interpreter); write what the client reported as JSON.

Usage: python sdk_driver.py segment|rudder <host> <write key> valid|bad-call
Five track calls, one batch (``upload_size`` 5); "bad-call" gives the third a messageId of 101
characters (Segment: 200, that call dropped; strict: 400 for the request). Retries are capped
at 3 so that a client retrying what it should not shows as 4 requests, not minutes of waiting.
"""

from __future__ import annotations

import json
import sys
from typing import Any

CALLS = 5


def _client_class(name: str) -> Any:
    if name == "rudder":
        from rudderstack.analytics import Client as Rudder

        return Rudder
    from segment.analytics import Client as Segment

    return Segment


def _version(name: str) -> str:
    if name == "rudder":
        from rudderstack.analytics.version import VERSION as RUDDER

        return str(RUDDER)
    from segment.analytics.version import VERSION as SEGMENT

    return str(SEGMENT)


def main(name: str, host: str, write_key: str, scenario: str) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []

    def on_error(error: Exception, batch: list[Any]) -> None:
        errors.append({"error": type(error).__name__, "status": getattr(error, "status", None),
                       "code": getattr(error, "code", None), "calls": len(batch)})

    client = _client_class(name)(write_key, host=host, on_error=on_error, upload_size=CALLS,
                                 upload_interval=0.5, max_retries=3)
    for i in range(CALLS):
        message_id = "m" * 101 if scenario == "bad-call" and i == 2 else f"{scenario}-{i}"
        client.track(f"user-{i}", "Checked", {"n": i}, message_id=message_id)
    client.flush()
    client.shutdown()
    return {"client": name, "version": _version(name), "errors": errors}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(*sys.argv[1:5])) + "\n")

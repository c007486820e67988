"""Webhook delivery of alerts: a POST of Slack-compatible JSON (``{"text": ...}``).

The URL is a credential (a Slack webhook's path is its key): it is checked against the
install's outbound policy, used, and never written into a message or a log line; a failure
names only what happened (the status, the kind of network error)."""

from __future__ import annotations

import httpx

from segbridge.alerts.notification import DeliveryFailed, Notification
from segbridge.core.access import AccessPolicy
from segbridge.core.errors import NotAllowedHere
from segbridge.core.secrets import Secret


def post_webhook(url: Secret, notification: Notification, access: AccessPolicy,
                 timeout: float, transport: httpx.BaseTransport | None = None) -> None:
    """POST ``{"text": ...}`` to the webhook; any answer but 2xx is a ``DeliveryFailed``."""
    try:
        access.check_url(url.reveal(), field="webhook_url")
    except NotAllowedHere:
        raise DeliveryFailed("the webhook's host is not allowed by the outbound policy "
                             "(SEGBRIDGE_OUTBOUND_DENY_PRIVATE)") from None
    try:
        with httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False,
                          transport=transport) as client:
            answer = client.post(url.reveal(), json={"text": notification.text})
    except httpx.TimeoutException:
        raise DeliveryFailed(f"the webhook did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"could not reach the webhook ({type(exc).__name__})") from None
    if not 200 <= answer.status_code < 300:
        raise DeliveryFailed(f"the webhook answered HTTP {answer.status_code}")

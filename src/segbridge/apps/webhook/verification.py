"""Whether a webhook request comes from its sender: an HMAC of the body, Basic auth or a
token, each compared in constant time.

Segment's own webhooks destination signs with ``X-Signature``: the hex HMAC-SHA1 of the raw
body with the shared secret (``{kind: hmac}``, the defaults). Shopify sends
``X-Shopify-Hmac-Sha256``, the base64 HMAC-SHA256 of the body
(``{kind: hmac, algorithm: sha256, encoding: base64, header: X-Shopify-Hmac-Sha256}``).
GitHub's ``X-Hub-Signature-256: sha256=<hex>`` takes ``prefix: "sha256="``. With a
``timestamp_header`` the signed text is ``<timestamp>.<body>`` and a timestamp further than
``tolerance_seconds`` from now is refused, so a captured request cannot be replayed later.

``Unverified`` says why in words safe to answer: never a header's value nor the expected one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from segbridge.apps.webhook.document import Verification
from segbridge.core.secrets import Secret


class Unverified(Exception):
    """The request did not prove it comes from the sender (answered 401, never stored)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Headers = Mapping[str, str]  # header names in lower case


def verify(rule: Verification, secret: Secret | None, headers: Headers, body: bytes,
           now: float) -> None:
    """Return when the request is verified; raise ``Unverified`` saying why not."""
    if rule.kind == "none":
        return
    if secret is None:
        raise Unverified("This webhook's verification secret is not set yet; set it on the "
                         "flow's page or with PUT /api/v1/flows/{id}/webhook/secret.")
    if rule.kind == "hmac":
        _verify_hmac(rule, secret, headers, body, now)
    elif rule.kind == "basic":
        _verify_basic(rule, secret, headers)
    else:
        _verify_token(rule, secret, headers)


def signature(rule: Verification, secret: Secret, body: bytes,
              timestamp: str | None = None) -> str:
    """The signature a sender following ``rule`` puts in its header (prefix included)."""
    message = body if timestamp is None else timestamp.encode() + b"." + body
    digest = hmac.new(secret.reveal().encode(), message, rule.algorithm).digest()
    encoded = digest.hex() if rule.encoding == "hex" else base64.b64encode(digest).decode()
    return rule.prefix + encoded


def _verify_hmac(rule: Verification, secret: Secret, headers: Headers, body: bytes,
                 now: float) -> None:
    header = rule.signature_header()
    sent = headers.get(header.lower())
    if not sent:
        raise Unverified(f"The request has no {header} header (its signature).")
    timestamp = _fresh_timestamp(rule, headers, now) if rule.timestamp_header else None
    expected = signature(rule, secret, body, timestamp)
    if not _same(sent.strip(), expected, rule.encoding == "hex"):
        raise Unverified(f"The {header} signature does not match the body: check the shared "
                         f"secret and that the body is sent unchanged.")


def _fresh_timestamp(rule: Verification, headers: Headers, now: float) -> str:
    name = str(rule.timestamp_header)
    sent = headers.get(name.lower(), "").strip()
    try:
        moment = float(sent)
    except ValueError:
        raise Unverified(f"The request's {name} header is missing or not a Unix time in "
                         "seconds.") from None
    if moment > 1e11:  # milliseconds
        moment /= 1000
    if abs(now - moment) > rule.tolerance_seconds:
        raise Unverified(f"The request's {name} is more than {rule.tolerance_seconds} s from "
                         "now: a replayed or delayed request (check the sender's clock).")
    return sent


def _same(sent: str, expected: str, hex_digits: bool) -> bool:
    if hex_digits:  # hex digits in either case
        return hmac.compare_digest(sent.lower().encode(), expected.lower().encode())
    return hmac.compare_digest(sent.encode(), expected.encode())


def _verify_basic(rule: Verification, secret: Secret, headers: Headers) -> None:
    sent = headers.get("authorization", "")
    scheme, _, encoded = sent.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Unverified("The request has no Basic Authorization header.")
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(
            ":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unverified("The request's Basic Authorization header is not valid base64.") \
            from None
    good_user = hmac.compare_digest(user.encode(), str(rule.username).encode())
    good_password = hmac.compare_digest(password.encode(), secret.reveal().encode())
    if not (good_user and good_password):
        raise Unverified("The Basic Authorization user name or password is wrong.")


def _verify_token(rule: Verification, secret: Secret, headers: Headers) -> None:
    header = rule.signature_header()
    sent = headers.get(header.lower())
    if not sent:
        raise Unverified(f"The request has no {header} header (its token).")
    expected = rule.token_prefix() + secret.reveal()
    if not hmac.compare_digest(sent.strip().encode(), expected.strip().encode()):
        raise Unverified(f"The token in {header} is wrong.")


def fingerprint(token: str) -> str:
    """The SHA-256 of a listener's URL token: what is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()

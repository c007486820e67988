"""The export section of a flow whose source is a webhook: ``type: webhook``.

```yaml
export:
  type: webhook
  verification: {kind: hmac, algorithm: sha1, encoding: hex, header: X-Signature}
  max_body_bytes: 1048576
  batch: {max_records: 5000, max_seconds: 1}
  sensitive_fields: [email, card.number]   # masked in the payloads the flow's page shows
```

``verification.kind``: ``none``, ``hmac`` (a signature of the raw body, optionally of
``<timestamp>.<body>`` when ``timestamp_header`` is set, refused outside
``tolerance_seconds``), ``basic`` (``username`` here, the password set through the API) or
``token`` (a header, ``Authorization: Bearer <token>`` by default). The secret itself is never
in the document: it is set through ``PUT /api/v1/flows/{id}/webhook/secret`` and kept in the
vault.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo
from pydantic_core import InitErrorDetails

from segbridge.exports.document import DocumentPart, ExportBase, located

SHOWN_MASK = "****"
MAX_SENSITIVE_FIELDS = 100
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_BATCH_RECORDS = 5000
SEGMENT_SIGNATURE_HEADER = "X-Signature"
HeaderName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9-]+$")]


class Verification(DocumentPart):
    """How a request proves it comes from the sender."""

    shape: ClassVar[str] = "use a mapping, e.g. {kind: hmac, header: X-Signature}"
    hints: ClassVar[Mapping[str, str]] = {
        "kind": "use one of: none, hmac, basic, token",
        "algorithm": "use sha1 or sha256", "encoding": "use hex or base64",
        "header": "name a header, e.g. X-Signature", "prefix": "use text, e.g. sha256=",
        "timestamp_header": "name a header, e.g. X-Timestamp",
        "tolerance_seconds": "use a number of seconds between 1 and 86400",
        "username": "use the user name the sender sends"}
    problem_order: ClassVar[tuple[str, ...]] = ("kind",)

    kind: Literal["none", "hmac", "basic", "token"] = "none"
    algorithm: Literal["sha1", "sha256"] = "sha1"
    encoding: Literal["hex", "base64"] = "hex"
    header: HeaderName | None = None
    prefix: Annotated[str, Field(max_length=50)] = ""
    timestamp_header: HeaderName | None = None
    tolerance_seconds: Annotated[int, Field(ge=1, le=86400)] = 300
    username: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        if data.get("kind") == "basic" and not data.get("username"):
            return [located(("username",), "name the user the sender sends with its "
                                           "password (basic verification)")]
        return []

    def signature_header(self) -> str:
        """Where the signature (hmac) or the token (token) is sent."""
        if self.header:
            return self.header
        return SEGMENT_SIGNATURE_HEADER if self.kind == "hmac" else "Authorization"

    def token_prefix(self) -> str:
        """What comes before a token in its header (``Bearer `` in Authorization)."""
        if self.prefix or self.kind != "token":
            return self.prefix
        return "Bearer " if self.signature_header().lower() == "authorization" else ""


class Batching(DocumentPart):
    """How received records are grouped into runs: a run starts at most ``max_seconds``
    after the first record waiting, with at most ``max_records`` records."""

    shape: ClassVar[str] = "use a mapping, e.g. {max_records: 5000, max_seconds: 1}"
    hints: ClassVar[Mapping[str, str]] = {
        "max_records": "use a whole number between 1 and 100000",
        "max_seconds": "use a number of seconds between 0.05 and 3600"}

    max_records: Annotated[int, Field(ge=1, le=100_000)] = DEFAULT_BATCH_RECORDS
    max_seconds: Annotated[float, Field(ge=0.05, le=3600)] = 1.0


class WebhookExport(ExportBase):
    """Records sent to the flow's own URL (``/hooks/<token>``)."""

    hints: ClassVar[Mapping[str, str]] = {
        **ExportBase.hints, "verification": Verification.shape, "batch": Batching.shape,
        "max_body_bytes": f"use a number of bytes between 1 and {MAX_BODY_BYTES}",
        "sensitive_fields": "use a list of field names, e.g. [email, card.number]"}
    problem_order: ClassVar[tuple[str, ...]] = ("type", "verification", "max_body_bytes",
                                                "batch", "sensitive_fields", "key_field")

    type: Literal["webhook"]
    verification: Verification = Field(default_factory=Verification)
    max_body_bytes: Annotated[int, Field(ge=1, le=MAX_BODY_BYTES)] = DEFAULT_MAX_BODY_BYTES
    batch: Batching = Field(default_factory=Batching)
    sensitive_fields: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]],
        Field(max_length=MAX_SENSITIVE_FIELDS,
              description="fields (dotted paths) masked in the payloads kept for the flow's "
                          "page; the records sent are not changed")] = []

    def shown(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload as the flow's page may keep and show it: each sensitive field masked
        (in every item of a list on the way), the rest as received."""
        if not self.sensitive_fields:
            return payload
        kept = copy.deepcopy(payload)
        for path in self.sensitive_fields:
            _mask(kept, path.split("."))
        return kept


def _mask(node: object, parts: Sequence[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _mask(item, parts)
    elif isinstance(node, dict) and parts and parts[0] in node:
        if len(parts) == 1:
            node[parts[0]] = SHOWN_MASK
        else:
            _mask(node[parts[0]], parts[1:])


WEBHOOK_EXPORT_MODELS: Mapping[str, type[ExportBase]] = {"webhook": WebhookExport}

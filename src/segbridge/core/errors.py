"""One exception tree for everything a user or an application can cause.

    SegbridgeError                      base: code, message (what to do), details
    +-- ConfigurationError              settings or master key wrong: fix config, restart
    +-- UserInputError                  the request was wrong; nothing was changed
    |   +-- ValidationFailed    422     field problems, every one listed in details
    |   +-- NotFound            404     unknown id, or another account's
    |   +-- Conflict            409     name taken, still in use, ...
    |   +-- ConnectionTestFailed 422    save refused because the test failed (details = result)
    |   +-- PayloadTooLarge     413     an upload or body over the configured limit
    |   +-- NotAllowedHere      403     a path outside the allowed roots, a denied address
    +-- AuthError
    |   +-- NotAuthenticated    401
    |   +-- PermissionDenied    403     the caller's role may not do this
    |   +-- TooManyAttempts     429     sign-in throttled: wait ``retry_after`` seconds
    +-- ApplicationError                an application (Segment, a database) answered badly
    |   +-- RetriableError              network errors, 429, 5xx: try again later
    |   +-- FatalError                  other 4xx: retrying will not help
    +-- RecordError             422     one record cannot become a call: keep it, go on
        +-- MappingError                exports.contracts: names the field and the reason
        +-- ExpressionError             mapping.expressions: an expression failed on it
        +-- TimestampError              mapping.timestamps: a value is not a date and time

Two errors about what a user wrote rather than about one record are ``UserInputError``s:
``ExpressionSyntaxError`` (mapping.expressions: an expression that does not compile) and
``DatabaseUrlError`` (apps.database.url: a URL that cannot be used). Those five are also
``ValueError``s, as they were before they joined this tree (callers such as the flow
document's checks catch ``ValueError``).

A record error is kept as a row (``storage.models.RecordErrorRow``) with the ``FailedStep``
that refused its record; the run goes on with the next record.

The REST API maps this tree to HTTP statuses in one place (``api/errors.py``) using
``http_status``; the CLI prints ``message`` and exits non-zero.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class SegbridgeError(Exception):
    """Root of every error segbridge raises on purpose."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ConfigurationError(SegbridgeError):
    code = "configuration_error"


class UserInputError(SegbridgeError):
    code = "bad_request"
    http_status = 400


class ValidationFailed(UserInputError):
    """One or more fields are wrong. ``details`` is a list of {"field", "message"}."""

    code = "validation_failed"
    http_status = 422

    def __init__(self, problems: list[FieldProblem]) -> None:
        summary = "; ".join(f"{p.field}: {p.message}" for p in problems)
        super().__init__(summary, details=[p.as_dict() for p in problems])
        self.problems = problems


class FieldProblem:
    """One problem with one field, phrased as what to do."""

    __slots__ = ("field", "message")

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}

    def __repr__(self) -> str:
        return f"FieldProblem({self.field!r}, {self.message!r})"


class NotFound(UserInputError):
    code = "not_found"
    http_status = 404


class Conflict(UserInputError):
    code = "conflict"
    http_status = 409


class ConnectionTestFailed(UserInputError):
    code = "connection_test_failed"
    http_status = 422


class PayloadTooLarge(UserInputError):
    code = "payload_too_large"
    http_status = 413


class NotAllowedHere(UserInputError):
    """A file path outside the allowed roots, or an address the outbound policy denies.
    ``details`` may name the field ({"field": ...}) so forms show it in place."""

    code = "not_allowed_here"
    http_status = 403


class AuthError(SegbridgeError):
    code = "auth_error"
    http_status = 401


class NotAuthenticated(AuthError):
    code = "not_authenticated"
    http_status = 401


class PermissionDenied(AuthError):
    code = "permission_denied"
    http_status = 403


class TooManyAttempts(AuthError):
    code = "too_many_attempts"
    http_status = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, details={"retry_after": round(retry_after, 1)})
        self.retry_after = retry_after


class ApplicationError(SegbridgeError):
    """An application answered badly or could not be reached."""

    code = "application_error"
    http_status = 502

    def __init__(
        self, message: str, *, cause: str, status: int | None = None, details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.cause = cause
        self.status = status


class RetriableError(ApplicationError):
    code = "retriable"

    def __init__(
        self,
        message: str,
        *,
        cause: str,
        status: int | None = None,
        retry_after: float | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message, cause=cause, status=status, details=details)
        self.retry_after = retry_after


class FatalError(ApplicationError):
    code = "fatal"


class RecordError(SegbridgeError):
    """One record cannot become a call (its data, not the flow, is wrong): the run keeps it
    as a record error and goes on; a preview shows it next to the record."""

    code = "record_error"
    http_status = 422


class FailedStep(StrEnum):
    """Where a run (or a preview) refused a record: the ``step`` of a record error, stored
    and shown as these strings."""

    EXPORT = "export"  # the source could not read it (or it is past a cap)
    LOOKUP = "lookup"  # a lookup found nothing for it (on_missing: fail_record)
    FILTER = "filter"  # a filter failed on it
    MAP = "map"  # the mapping failed on it, or its call cannot be written as JSON
    IMPORT = "import"  # its call is too large, or the receiver refused it

"""The errors an export raises: the run fails (fatal) or may be tried again later (retriable).

    FatalError (core)
    +-- ExportError                 the file or the query is wrong, or the database refused us:
                                    fix the flow or the connection, then run again
    RetriableError (core)
    +-- ExportUnavailable           the database cannot be reached right now (dns, refused,
                                    timeout, connection lost): try again later

Unreadable records (a malformed CSV line, invalid JSON, invalid UTF-8) are not exceptions: they
become SourceRecords with ``data=None`` and ``error`` set, and the stream goes on. Messages
never carry a password (database errors are scrubbed before they get here).
"""

from __future__ import annotations

from typing import Any

from segbridge.core.errors import FatalError, RetriableError


class ExportError(FatalError):
    """The export cannot go on: a missing file, a bad option, a failing query."""

    code = "export_error"

    def __init__(self, message: str, *, cause: str = "export", details: Any = None) -> None:
        super().__init__(message, cause=cause, details=details)


class ExportUnavailable(RetriableError):
    """The database cannot be reached right now; the run can be tried again later."""

    code = "export_unavailable"

    def __init__(self, message: str, *, cause: str, details: Any = None) -> None:
        super().__init__(message, cause=cause, details=details)

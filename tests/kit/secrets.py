"""What "a secret never shows" means for every application: the secret's own text and the
forms it travels in (URL-encoded in a path or a query, base64 in HTTP Basic), searched in
anything a person or a log file could see.

``captured_logs`` records every log record at DEBUG, whatever levels the process set before
(a server quiets httpx; a test run may not), so a leak cannot hide behind a logger's level.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import quote, quote_plus

from segbridge.core.log_redaction import RedactSecrets
from segbridge.core.secrets import Secret


def secret_forms(secrets: Iterable[Secret]) -> set[str]:
    """Each secret as written, URL-encoded, and base64-encoded (alone and as Basic's
    ``key:``)."""
    forms: set[str] = set()
    for secret in secrets:
        value = secret.reveal()
        if not value:
            continue
        forms |= {value, quote(value, safe=""), quote_plus(value),
                  _b64(value), _b64(f"{value}:")}
    return forms


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def leaks(texts: Iterable[str], forms: set[str]) -> list[str]:
    """The texts that show a secret (empty when none does), cut short for a failure report."""
    return [text[:300] for text in texts if any(form in text for form in forms)]


class RecordList(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_logs() -> Iterator[RecordList]:
    """Every record any logger emits at DEBUG or above while the block runs."""
    handler = RecordList()
    root = logging.getLogger()
    levels = {name: logger.level for name, logger in _named_loggers()}
    root_level = root.level
    for _name, logger in _named_loggers():
        logger.setLevel(logging.NOTSET)
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _named_loggers() -> list[tuple[str, logging.Logger]]:
    manager = logging.Logger.manager
    return [(name, logger) for name, logger in list(manager.loggerDict.items())
            if isinstance(logger, logging.Logger)]


def raw_lines(records: Iterable[logging.LogRecord]) -> list[str]:
    """What each record says before any filter: its message, arguments and traceback."""
    return [_line(record) for record in records]


def written_lines(records: Iterable[logging.LogRecord]) -> list[str]:
    """What each record says once the install's log filter (``RedactSecrets``, which the
    server puts on every handler) has run over it: the line that reaches a log file."""
    redact = RedactSecrets()
    lines = []
    for record in records:
        copy = logging.makeLogRecord(record.__dict__)
        redact.filter(copy)
        lines.append(_line(copy))
    return lines


def _line(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = f"{record.msg!r} {record.args!r}"
    trace = record.exc_text
    if not trace and record.exc_info:
        trace = logging.Formatter().formatException(record.exc_info)
    return f"{message}\n{trace}" if trace else message

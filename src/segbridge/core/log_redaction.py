"""No secret or one-time token in any log line.

``RedactSecrets`` is a logging filter: on uvicorn's access log it rewrites the request path
(write keys in paths masked, the query string dropped whole: login links carry their one-time
token there); on every other record it scrubs the formatted message and traceback of the same
shapes (a key in a Segment settings path, ``token=`` and other secret query values, HTTP
Basic and Bearer credentials). ``uvicorn_log_config`` is uvicorn's own logging configuration
with the filter on both of its handlers; ``install`` puts it on the root logger's handlers.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import uvicorn.config

MASK = "****"
ACCESS_LOGGER = "uvicorn.access"
# a write key in a path: the settings endpoint's, and the analytics.js library's (CDN shape)
_PATH_WITH_KEY = re.compile(
    r"(/projects/|/analytics\.js/v1/)[^/?#\s\"']+(/settings|/analytics\.min\.js)")
_SECRET_QUERY = re.compile(
    r"([?&](?:token|write_?key|writeKey|key|password|secret|api_?key)=)[^&#\s\"']*",
    re.IGNORECASE,
)
_CREDENTIALS = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{8,}", re.IGNORECASE)
_PATH_ARG = 2  # uvicorn's access record: (client, method, path with query, version, status)


def mask_path(path: str) -> str:
    """A request path as the access log shows it: no query string, no key in it."""
    return _PATH_WITH_KEY.sub(rf"\1{MASK}\2", path.partition("?")[0])


def scrub(text: str) -> str:
    """``text`` with keys in settings paths, secret query values and credentials masked."""
    text = _PATH_WITH_KEY.sub(rf"\1{MASK}\2", text)
    text = _SECRET_QUERY.sub(rf"\1{MASK}", text)
    return _CREDENTIALS.sub(rf"\1 {MASK}", text)


class RedactSecrets(logging.Filter):
    """Rewrites each record so that its line carries no write key and no token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == ACCESS_LOGGER and _is_access_record(record.args):
            args = list(record.args)  # type: ignore[arg-type]
            args[_PATH_ARG] = mask_path(str(args[_PATH_ARG]))
            record.args = tuple(args)
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: logging reports it when formatting
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


def _is_access_record(args: object) -> bool:
    return isinstance(args, tuple) and len(args) > _PATH_ARG


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration, with ``RedactSecrets`` on its handlers."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"redact_secrets": {"()": RedactSecrets}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_secrets"]
    return config


def install(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())

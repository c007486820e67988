"""Why a database connection or query failed, as a cause code and words a user can act on.

Causes: dns, refused, timeout, connection_lost, locked (a DuckDB file another process writes
to) (try again later); auth, unknown_database, driver (fix the connection); query (fix the
query). Every message is scrubbed of the password.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from segbridge.apps.database.connect import scrub
from segbridge.apps.database.url import DRIVERS, FILE_DRIVERS, describe
from segbridge.core.secrets import Secret

UNREACHABLE = frozenset({"dns", "refused", "timeout", "connection_lost", "locked"})
PG_AUTH = frozenset({"28P01", "28000"})
MYSQL_AUTH = frozenset({1044, 1045, 1698, 1251})
DNS_SIGNS = ("could not translate host name", "name or service not known",
             "nodename nor servname", "temporary failure in name resolution",
             "no address associated", "getaddrinfo failed", "[errno -2]", "[errno -3]",
             "[errno -5]", "name resolution")
REFUSED_SIGNS = ("connection refused", "[errno 111]", "no such file or directory")
TIMEOUT_SIGNS = ("timeout expired", "timed out", "canceling statement due to statement timeout")
AUTH_SIGNS = ("password authentication failed", "no pg_hba.conf entry", "access denied for user")
UNKNOWN_DATABASE = re.compile(r'database "[^"]*" does not exist|unknown database')
ROLE_MISSING = re.compile(r'role "[^"]*" does not exist')
LOST_SIGNS = ("server closed the connection", "lost connection", "server has gone away",
              "terminating connection", "connection already closed", "consuming input failed")


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    message: str
    detail: str  # what the driver said, scrubbed

    @property
    def unreachable(self) -> bool:
        return self.cause in UNREACHABLE


def driver_text(exc: BaseException, password: Secret | None) -> str:
    """The driver's own message (not SQLAlchemy's wrapper with its links), scrubbed."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    code = _mysql_code(orig)
    if code is not None and len(orig.args) > 1:
        text = f"{orig.args[1]} (error {code})"
    else:
        text = str(orig).strip() or type(orig).__name__
    return scrub(" ".join(text.split()), password)


ASKED_FOR_A_FILE = ("The server asked for a file of segbridge's machine (LOAD DATA LOCAL "
                    "INFILE); segbridge never sends one. Check that the URL names your "
                    "database server.")


def asked_for_a_file(exc: BaseException) -> bool:
    """pymysql's refusal of a server's request for a local file (a RuntimeError, not a
    database error: ``connect`` never lets the driver send one)."""
    return isinstance(exc, RuntimeError) and "LOAD_LOCAL" in str(exc)


def diagnose(exc: BaseException, url: URL, password: Secret | None, *,
             timeout: float | None = None) -> Diagnosis:
    detail = driver_text(exc, password)
    cause = _cause(exc, url, detail.lower())
    return Diagnosis(cause, _message(cause, url, detail, timeout), detail)


def _cause(exc: BaseException, url: URL, lower: str) -> str:
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    sqlstate = getattr(orig, "sqlstate", None)
    code = _mysql_code(orig)
    if sqlstate in PG_AUTH or code in MYSQL_AUTH or ROLE_MISSING.search(lower) or \
            any(sign in lower for sign in AUTH_SIGNS):
        return "auth"
    if sqlstate == "3D000" or code == 1049 or UNKNOWN_DATABASE.search(lower):
        return "unknown_database"
    if url.drivername == "sqlite" and "unable to open database file" in lower:
        return "unknown_database" if not Path(url.database or "").exists() else "driver"
    if url.drivername == "duckdb":
        if "database does not exist" in lower and not Path(url.database or "").exists():
            return "unknown_database"
        if "could not set lock on file" in lower:
            return "locked"
    return _network_cause(exc, orig, lower, sqlstate)


def _network_cause(exc: BaseException, orig: BaseException, lower: str,
                   sqlstate: object) -> str:
    if isinstance(orig, socket.gaierror) or any(sign in lower for sign in DNS_SIGNS):
        return "dns"
    if isinstance(orig, ConnectionRefusedError) or any(s in lower for s in REFUSED_SIGNS):
        return "refused"
    if isinstance(orig, TimeoutError) or sqlstate == "57014" or \
            any(sign in lower for sign in TIMEOUT_SIGNS):
        return "timeout"
    if (isinstance(exc, DBAPIError) and exc.connection_invalidated) or \
            any(sign in lower for sign in LOST_SIGNS):
        return "connection_lost"
    return "driver"


def _mysql_code(orig: BaseException) -> int | None:
    if type(orig).__module__.startswith("pymysql") and orig.args and \
            isinstance(orig.args[0], int):
        return orig.args[0]
    return None


def _message(cause: str, url: URL, detail: str, timeout: float | None) -> str:
    where = describe(url)
    if cause == "dns":
        return (f"The host {url.host} could not be found (DNS). Check the host name in the "
                "URL.")
    if cause == "refused":
        return (f"Nothing accepts connections at {where} (connection refused). Check the host "
                "and port, and that the database server is running and listens on TCP.")
    if cause == "timeout":
        within = f" within {timeout:g} s" if timeout else ""
        return (f"No answer from {where}{within}. Check the host, the port and any firewall "
                f"between segbridge and the database. The driver said: {detail}")
    if cause == "connection_lost":
        return f"The connection to {where} was lost. The driver said: {detail}"
    if cause == "locked":
        return (f"The DuckDB file {url.database} is open for writing in another process, and "
                "DuckDB lets readers in only when no process writes to it. Run the flow when "
                "that process has closed the file, or export from a copy of it.")
    if cause == "auth":
        return (f"The database refused the user '{url.username or ''}' or its password. Check "
                f"the user in the URL and the Password field. The server said: {detail}")
    if cause == "unknown_database":
        name = url.database or ""
        if url.drivername in FILE_DRIVERS:
            product = DRIVERS[url.drivername]
            return f"The {product} file {name} does not exist. Check the path in the URL."
        return (f"The database '{name}' does not exist on {where}. Check the database name "
                "at the end of the URL.")
    return f"The database driver reported an error: {detail}"

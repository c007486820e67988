"""Database URLs: parsed, checked, and shown without a password.

SQLite and DuckDB URLs name a file by absolute path (four slashes); ``duckdb:///:memory:`` is
a DuckDB of its own that queries Parquet and CSV files inside the allowed roots.

The URL carries everything but the password (``postgresql+psycopg://app@db.example/shop``);
the password is a secret setting injected only when connecting.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from segbridge.core.access import Targets
from segbridge.core.errors import UserInputError
from segbridge.core.secrets import Secret

DRIVERS = {
    "postgresql+psycopg": "PostgreSQL",
    "mysql+pymysql": "MySQL / MariaDB",
    "sqlite": "SQLite",
    "duckdb": "DuckDB",
}
EXAMPLES = ("postgresql+psycopg://app@db.example:5432/shop, mysql+pymysql://app@db.example/shop, "
            "sqlite:////srv/data/shop.db or duckdb:////srv/data/warehouse.duckdb")
DUCKDB_MEMORY = ":memory:"  # a DuckDB of its own for queries over Parquet and CSV files
FILE_DRIVERS = frozenset({"sqlite", "duckdb"})
PASSWORD_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword"})
QUERY_OPTIONS = {  # the options a server URL may carry after '?': each one harmless. Others
    # read files on segbridge's machine (MySQL's local_infile let a hostile server ask for
    # any file; read_default_file, init_command; PostgreSQL's service, passfile, sslkey) or
    # reach another host than the one checked (PostgreSQL's hostaddr, lists of hosts)
    "postgresql+psycopg": frozenset({
        "host", "port", "sslmode", "connect_timeout", "application_name",
        "target_session_attrs", "gssencmode", "channel_binding", "keepalives",
        "keepalives_idle", "keepalives_interval", "keepalives_count", "options"}),
    "mysql+pymysql": frozenset({
        "charset", "unix_socket", "connect_timeout", "read_timeout", "write_timeout",
        "ssl_disabled", "ssl_verify_cert", "ssl_verify_identity", "binary_prefix"}),
}


class DatabaseUrlError(UserInputError, ValueError):
    """A URL that cannot be used; the message says what to change (and never echoes it). A
    ``UserInputError`` (what a user wrote is wrong), and a ``ValueError``."""


def parse_database_url(text: str) -> URL:
    """The URL, checked: a supported driver, no password inside, an absolute SQLite path."""
    problems = url_problems(text)
    if problems:
        raise DatabaseUrlError(problems[0])
    return make_url(text.strip())


def url_problems(text: str | None) -> list[str]:
    """Every problem with a database URL, as what to do (empty: the URL is fine)."""
    if not text or not text.strip():
        return [f"Enter the database URL, e.g. {EXAMPLES}."]
    try:
        url = make_url(text.strip())
    except (ArgumentError, ValueError):
        return [f"This is not a database URL; write it like {EXAMPLES}."]
    problems: list[str] = []
    if url.drivername not in DRIVERS:
        problems.append(_driver_problem(url.drivername))
    if url.password is not None or PASSWORD_QUERY_KEYS & {k.lower() for k in url.query}:
        problems.append("Remove the password from the URL and enter it in the Password field "
                        "(it is stored encrypted there).")
    if url.drivername in QUERY_OPTIONS:
        problems += _option_problems(url, QUERY_OPTIONS[url.drivername])
    if url.drivername == "sqlite":
        problems += _sqlite_problems(url)
    if url.drivername == "duckdb":
        problems += _duckdb_problems(url)
    return problems


def _driver_problem(driver: str) -> str:
    hint = ""
    if driver.startswith("postgres"):
        hint = " For PostgreSQL write postgresql+psycopg://..."
    elif driver.startswith(("mysql", "mariadb")):
        hint = " For MySQL or MariaDB write mysql+pymysql://..."
    elif driver.startswith("sqlite"):
        hint = " For SQLite write sqlite:////absolute/path/file.db"
    elif driver.startswith("duckdb"):
        hint = " For DuckDB write duckdb:////absolute/path/file.duckdb"
    return f"The driver '{driver}' is not supported; use {', '.join(DRIVERS)}.{hint}"


def _option_problems(url: URL, allowed: frozenset[str]) -> list[str]:
    """Options after '?' outside ``allowed``, and a host or port given twice or as a list
    (each host must be the one checked: the URL's own, or one ``host`` option)."""
    refused = sorted(key for key in url.query  # (the drivers' names are case-sensitive: a
                     # "HOST" is no host, and the checks below read the lower-case ones)
                     if key not in allowed and key.lower() not in PASSWORD_QUERY_KEYS)
    problems = [f"Remove the option{'s' if len(refused) > 1 else ''} {', '.join(refused)} from "
                f"the URL: segbridge accepts only {', '.join(sorted(allowed))} there."] \
        if refused else []
    hosts = [url.host or "", url.query.get("host")]
    if any(isinstance(host, tuple) or (host and "," in host) for host in hosts) or \
            isinstance(url.query.get("port"), tuple):
        problems.append("Give one host in the URL: segbridge connects to one database server, "
                        "the one it checks.")
    port = url.query.get("port")
    if isinstance(port, str) and not port.isdigit():
        problems.append("Give the port option as digits only (port=5432).")
    return problems


def _sqlite_problems(url: URL) -> list[str]:
    if url.query:
        return ["Remove the options after '?' from the SQLite URL: segbridge opens the file "
                "read-only with its own."]
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return ["Give the path of the SQLite file: sqlite:////srv/data/shop.db "
                "(four slashes before an absolute path)."]
    if not PurePosixPath(database).is_absolute():
        return [f"Use an absolute path for the SQLite file: sqlite:////{database.lstrip('/')} "
                "(four slashes)."]
    return []


def _duckdb_problems(url: URL) -> list[str]:
    """A DuckDB file by absolute path, or ``:memory:`` (to query Parquet and CSV files); no
    options in the URL (segbridge sets DuckDB's own, read-only and locked to the roots)."""
    problems: list[str] = []
    database = url.database or ""
    if database != DUCKDB_MEMORY and not PurePosixPath(database).is_absolute():
        problems.append("Give the absolute path of the DuckDB file, "
                        "duckdb:////srv/data/warehouse.duckdb (four slashes), or "
                        "duckdb:///:memory: to query Parquet and CSV files only.")
    if url.query:
        problems.append("Remove the options after '?' from the DuckDB URL: segbridge opens "
                        "DuckDB read-only with its own settings.")
    return problems


def targets_of(text: str | None, field: str = "settings.url") -> Targets:
    """What a database URL reaches: the SQLite file, or the server's host (a socket path
    given in the query counts as this machine)."""
    try:
        url = make_url((text or "").strip())
    except (ArgumentError, ValueError):
        return Targets()
    if url.drivername in FILE_DRIVERS:
        database = url.database
        has_file = bool(database) and database != DUCKDB_MEMORY
        return Targets(files=((field, str(database)),)) if has_file else Targets()
    host = _query_text(url, "host") or _query_text(url, "unix_socket") or url.host or "localhost"
    port = _query_text(url, "port")  # (the driver takes the option's over the address's)
    database = url.database or (url.username or "" if url.drivername.startswith("postgresql")
                                else "")  # (libpq's default database: the user's name)
    return Targets(databases=((field, host, int(port) if port and port.isdigit() else url.port,
                               database),))


def _query_text(url: URL, key: str) -> str | None:
    value = url.query.get(key)
    if isinstance(value, tuple):
        value = value[0] if value else None
    return value or None


def public_url(url: URL | str) -> str:
    """The URL as it may be shown and logged: the password, if any, is masked."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):
        return "(not a database URL)"
    return parsed.render_as_string(hide_password=True)


def with_password(url: URL, password: Secret | None) -> URL:
    """The URL to connect with (never shown: only given to create_engine). SQLite files have
    no password: one given is ignored."""
    if password is None or not password or url.drivername in FILE_DRIVERS:
        return url
    return url.set(password=password.reveal())


def describe(url: URL) -> str:
    """Where the database is, for messages: "db.example:5432", "the file /srv/shop.db"."""
    if url.drivername == "duckdb" and url.database in (None, "", DUCKDB_MEMORY):
        return "DuckDB in memory"
    if url.drivername in FILE_DRIVERS:
        return f"the file {url.database}"
    host = url.host or "localhost (socket)"
    return f"{host}:{url.port}" if url.port else host

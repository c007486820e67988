"""Where data may come from and what segbridge may call: the install's access policy.

Two rules, checked on save, on preview and at run time by the same functions:

- **Files** (file exports, SQLite database connections) are read only inside the directories
  an operator allows (``SEGBRIDGE_FILE_ROOTS``), after symlinks and ``..`` are resolved. The
  segbridge home (database, key ring, uploads of every account, local Segment state), the key
  file and segbridge's own database are never readable that way, whatever the roots say. An
  account's own uploads are read by upload id, never by path.
- **Outbound calls** (connection endpoints, database hosts, later HTTP sources): with
  ``SEGBRIDGE_OUTBOUND_DENY_PRIVATE`` set, a host that resolves to a loopback, private,
  link-local or otherwise non-public address is refused, unless named in
  ``SEGBRIDGE_OUTBOUND_ALLOW_HOSTS``. segbridge's own local Segment (``/sandbox`` on this
  server's port) stays allowed.

The address check resolves the name before the call; a DNS answer that changes between the
check and the connection (rebinding) is not caught here (see docs/security.md).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from segbridge.core.errors import NotAllowedHere
from segbridge.core.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
SANDBOX_PREFIX = "/sandbox"


@dataclass(frozen=True)
class Targets:
    """What a connection or an export will touch: files it reads and URLs it calls."""

    files: tuple[tuple[str, str], ...] = ()  # (field, path)
    urls: tuple[tuple[str, str], ...] = ()  # (field, URL)
    hosts: tuple[tuple[str, str, int | None], ...] = ()  # (field, host, port)
    databases: tuple[tuple[str, str, int | None, str], ...] = ()  # (field, host, port, name)


@dataclass(frozen=True)
class AccessPolicy:
    """The install's rules for files and outbound addresses (built from the settings)."""

    file_roots: tuple[Path, ...]
    protected: tuple[Path, ...]  # never readable: the home, the key file, the database
    deny_private: bool = False
    allow_hosts: frozenset[str] = frozenset()
    own_ports: frozenset[int] = frozenset()
    own_hosts: frozenset[str] = field(default_factory=frozenset)
    own_database: tuple[str, int, str] | None = None  # segbridge's PostgreSQL: host, port, name

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        return cls(file_roots=settings.allowed_file_roots,
                   protected=_protected_paths(settings),
                   deny_private=settings.outbound_deny_private,
                   allow_hosts=settings.outbound_allowed_hosts,
                   own_ports=frozenset(_own_ports(settings)),
                   own_hosts=frozenset(_own_hosts(settings)),
                   own_database=_own_database(settings.resolved_database_url))

    # -- files ---------------------------------------------------------------------------
    def check_file(self, path: str | Path, *, field: str = "path") -> Path:
        """The file's real path, if a flow or connection may read it; else NotAllowedHere."""
        if "\x00" in str(path):  # (the system would open the path cut at the NUL)
            raise _refused(field, "The path contains a NUL character (\\u0000); remove it.")
        raw = Path(str(path)).expanduser()
        if not raw.is_absolute():
            raise _refused(field, f"Use an absolute path (starting with /) instead of '{path}'.")
        real = raw.resolve()
        if any(is_inside(real, place) for place in self.protected):
            raise _refused(field, f"The path {path} is inside segbridge's own data (its home, "
                                  "key file or database), which flows and connections may never "
                                  "read. Upload the file instead, or use a file elsewhere.")
        if not any(is_inside(real, root) for root in self.file_roots):
            raise _refused(field, _outside_roots(str(path), self.file_roots))
        return real

    # -- outbound addresses ------------------------------------------------------------
    def check_url(self, url: str, *, field: str = "url") -> None:
        """Refuse a URL whose host is not public when the install denies private ranges."""
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return  # not a URL with a port; the caller's own validation says so
        if self._own_local_segment(host, port, parts.path):
            return
        self.check_host(host, port, field=field)

    def check_host(self, host: str | None, port: int | None, *, field: str = "host") -> None:
        if not self.deny_private:
            return
        name = (host or "localhost").lower().strip("[]")
        if name in self.allow_hosts:
            return
        for address in _addresses(name, port):
            if not address.is_global:
                raise _refused(field, _private_message(name, address))

    def check_targets(self, targets: Targets) -> None:
        for field_name, path in targets.files:
            self.check_file(path, field=field_name)
        for field_name, url in targets.urls:
            self.check_url(url, field=field_name)
        for field_name, host, port in targets.hosts:
            self.check_host(host, port, field=field_name)
        for field_name, host, port, name in targets.databases:
            self.check_database(host, port, name, field=field_name)

    def check_database(self, host: str, port: int | None, name: str, *,
                       field: str = "url") -> None:
        """segbridge's own database is never a source, whatever the policy: it holds every
        account's flows, record errors and encrypted secrets."""
        if self.own_database is not None:
            own_host, own_port, own_name = self.own_database
            if (port or 5432) == own_port and name.lower() == own_name.lower() \
                    and _same_machine(host, own_host):
                raise _refused(field, "This is segbridge's own database, which holds every "
                                      "account's data; a connection may never read it. Use "
                                      "the database your records are in.")
        self.check_host(host, port, field=field)

    def _own_local_segment(self, host: str, port: int, path: str) -> bool:
        segments = unquote(path).split("/")  # ("/sandbox/../api" reached the API: no dot
        if port not in self.own_ports or segments[:2] != ["", SANDBOX_PREFIX.strip("/")] \
                or "." in segments or ".." in segments:  # segments, plain or %2e-encoded)
            return False
        if host in self.own_hosts or host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


@functools.lru_cache(maxsize=16)
def access_policy(settings: Settings) -> AccessPolicy:
    """The policy of these settings, built once per process (settings are frozen)."""
    return AccessPolicy.from_settings(settings)


def _protected_paths(settings: Settings) -> tuple[Path, ...]:
    places = [settings.home, settings.resolved_master_key_file]
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        database = url.split(":///", 1)[-1].split("?", 1)[0]
        if database and database != ":memory:":
            places.append(Path(database))
    return tuple(_real(place) for place in places)


def _own_database(url: str) -> tuple[str, int, str] | None:
    if not url.startswith("postgresql"):
        return None  # a SQLite file is protected as a path
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return (parsed.host or "localhost", parsed.port or 5432, parsed.database or "")


def _same_machine(host: str, other: str) -> bool:
    """Both names reach the same machine: a shared address, or both on this machine."""
    mine, theirs = set(_addresses(host.lower(), None)), set(_addresses(other.lower(), None))
    if mine & theirs:
        return True
    if host.lower() == other.lower():
        return True
    return _on_this_machine(mine) and _on_this_machine(theirs)


def _on_this_machine(found: set[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    """Every address is one of this machine's own (loopback, or an interface's address:
    binding to it succeeds)."""
    return bool(found) and all(address.is_loopback or _bindable(address) for address in found)


def _bindable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


def _own_ports(settings: Settings) -> Iterable[int]:
    yield settings.port
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        try:
            yield parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return


def _own_hosts(settings: Settings) -> Iterable[str]:
    yield settings.host.lower()
    if settings.public_url:
        yield (urlsplit(settings.public_url).hostname or "").lower()


def _real(path: Path) -> Path:
    return path.expanduser().resolve()


def is_inside(path: Path, place: Path) -> bool:
    """``path`` is ``place`` or below it, or a side file of it (``-wal``, ``.tmp``...)."""
    if path == place or place in path.parents:
        return True
    return path.parent == place.parent and path.name.startswith((place.name + "-",
                                                                 place.name + "."))


def _addresses(host: str, port: int | None) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host.startswith(("/", "@")):  # a Unix socket (@: an abstract one): on this machine
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []  # the connection itself will report the DNS failure
    found = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        found.append(ipaddress.ip_address(text))
    return found


def _private_message(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    kind = ("a loopback" if address.is_loopback else "a link-local" if address.is_link_local
            else "a private" if address.is_private else "a non-public")
    shown = host if host == str(address) else f"{host} ({address})"
    return (f"{shown} is {kind} address, and this segbridge refuses those "
            "(SEGBRIDGE_OUTBOUND_DENY_PRIVATE). Use a public address, or ask the operator to "
            f"add {host} to SEGBRIDGE_OUTBOUND_ALLOW_HOSTS.")


def _outside_roots(path: str, roots: tuple[Path, ...]) -> str:
    if not roots:
        return (f"The path {path} cannot be read: this segbridge reads server files only from "
                "directories its operator allows (SEGBRIDGE_FILE_ROOTS), and none is set. "
                "Upload the file instead, or ask the operator to allow its directory.")
    allowed = ", ".join(str(root) for root in roots)
    return (f"The path {path} is outside the directories segbridge may read ({allowed}). "
            "Move the file there, upload it, or ask the operator to add its directory to "
            "SEGBRIDGE_FILE_ROOTS.")


def _refused(field_name: str, message: str) -> NotAllowedHere:
    return NotAllowedHere(message, details={"field": field_name})

"""The outbound policy at the moment of connecting, for every request of an HTTP export, and
segbridge's own server kept out of reach.

``check_url`` refuses an address of segbridge's own server (its port on this machine or its
public address): an HTTP export must not read segbridge's own endpoints (health, metrics, the
local Segment's state), whatever the policy allows otherwise.

``AccessPolicy.check_url`` resolves a host before a request; a DNS answer that changes
between that check and the connection (DNS rebinding: public first, 127.0.0.1 next) would
pass it. ``GuardedBackend`` closes that gap: it resolves the host itself when it connects,
checks every address it got against the policy, and connects to a checked address (TLS still
verifies the certificate for the host name). An address the policy refuses raises
``NotAllowedHere``, which ends the request before a byte is sent.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

from segbridge.core.access import LOOPBACK_NAMES, AccessPolicy
from segbridge.core.errors import NotAllowedHere

SocketOption = (tuple[int, int, int] | tuple[int, int, bytes | bytearray]
                | tuple[int, int, None, int])


class GuardedBackend(httpcore.SyncBackend):
    """A network backend that connects only to addresses the policy allows."""

    def __init__(self, policy: AccessPolicy) -> None:
        self._policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[SocketOption] | None = None,
                    ) -> httpcore.NetworkStream:
        policy = self._policy
        if not policy.deny_private or host.lower() in policy.allow_hosts:
            return super().connect_tcp(host, port, timeout, local_address, socket_options)
        address = self._checked_address(host, port)
        return super().connect_tcp(address, port, timeout, local_address, socket_options)

    def _checked_address(self, host: str, port: int) -> str:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        addresses = [str(info[4][0]).split("%", 1)[0] for info in infos]
        for address in addresses:  # every answer is checked, as check_host does
            self._policy.check_host(address, port, field="export.connection")
        return addresses[0]


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport over a ``GuardedBackend`` (certificates verified as usual)."""

    def __init__(self, policy: AccessPolicy) -> None:
        super().__init__()
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(),
                                             network_backend=GuardedBackend(policy))


def check_url(policy: AccessPolicy, url: str, *, field: str) -> None:
    """The policy's check of ``url``, and never segbridge's own server."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    if port in policy.own_ports and _this_server(policy, host):
        raise NotAllowedHere(
            f"{parts.scheme}://{host}:{port} is this segbridge server itself; an HTTP export "
            "may not read it. Use the address of the API your records come from.",
            details={"field": field})
    policy.check_url(url, field=field)


def _this_server(policy: AccessPolicy, host: str) -> bool:
    if host in policy.own_hosts or host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

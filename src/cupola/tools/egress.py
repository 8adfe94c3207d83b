"""Where server-side tools may send requests: a deny-by-default allowlist from cupola.yaml.

Two checks, both needed. :meth:`EgressPolicy.check` refuses a URL whose host name is not
allowed, before anything is sent. Then, when a connection is opened, the host name is
resolved once, every address it resolves to is checked (a listed name that resolves to
127.0.0.1 or to a cloud metadata address is refused), and the socket connects to exactly
the checked address: a second DNS answer between the check and the connect (DNS
rebinding) is never asked for. The HTTP clients of tools get this through
:meth:`EgressPolicy.transport` (httpx) and :meth:`EgressPolicy.transport2` (httpx2, the MCP
SDK's client).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpcore2
import httpx
import httpx2

from cupola.exceptions import UserError
from cupola.settings import ToolSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Host name and port to the addresses they resolve to (for tests: a fixed answer)."""


class EgressDenied(UserError):
    """A tool tried to reach a host the project does not allow."""

    status_code = 403
    error_type = "permission_error"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _matches(pattern: str, host: str, port: int | None) -> bool:
    pattern = pattern.strip().lower()
    want_port: int | None = None
    if pattern.count(":") == 1 and not pattern.startswith("["):
        pattern, raw_port = pattern.split(":")
        want_port = int(raw_port)
    if want_port is not None and want_port != port:
        return False
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern.strip("[]")


def _address(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone is not the address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the system resolver's order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EgressPolicy:
    """Checks outbound URLs against ``tools.allowed_hosts`` (and loopback in development),
    and the addresses their hosts resolve to when a connection is opened."""

    def __init__(self, settings: ToolSettings, resolver: Resolver | None = None) -> None:
        self.settings = settings
        self.resolver: Resolver = resolver or system_resolver

    def check(self, url: str, *, what: str = "tool") -> None:
        """Raise :class:`EgressDenied` unless ``url`` may be called."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EgressDenied(f"{what} URL {url!r} is not an http(s) URL", code="egress_denied")
        host = parts.hostname.lower().rstrip(".")  # "localhost." is localhost
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if _is_loopback(host):
            if self.settings.allow_loopback:
                return
            raise EgressDenied(
                f"{what} may not call loopback address {host} (tools.allow_loopback is off)",
                code="egress_denied",
            )
        if any(_matches(p, host, port) for p in self.settings.allowed_hosts):
            return
        raise EgressDenied(
            f"{what} may not call {host}: it is not in tools.allowed_hosts of cupola.yaml",
            code="egress_denied",
        )

    def _listed_address(self, address: IPAddress) -> bool:
        for pattern in self.settings.allowed_hosts:
            text = pattern.strip().strip("[]")
            try:
                if address in ipaddress.ip_network(text, strict=False):
                    return True
            except ValueError:
                continue
        return False

    def check_address(self, host: str, text: str) -> None:
        """Raise :class:`EgressDenied` unless ``host``'s resolved address ``text`` may be
        reached: loopback (and the unspecified address, which reaches it) only with
        ``tools.allow_loopback``; link-local (cloud metadata), multicast and reserved
        addresses only when listed themselves in ``tools.allowed_hosts``."""
        address = _address(text)
        if address.is_loopback or address.is_unspecified:
            if self.settings.allow_loopback:
                return
            raise EgressDenied(
                f"{host} resolves to the loopback address {address}, and tools.allow_loopback "
                "is off",
                code="egress_denied",
            )
        if address.is_link_local or address.is_multicast or address.is_reserved:
            if self._listed_address(address):
                return
            raise EgressDenied(
                f"{host} resolves to {address}, a link-local, multicast or reserved address "
                "tools may not reach unless tools.allowed_hosts lists it",
                code="egress_denied",
            )

    async def resolve(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` once and check every address; the checked addresses, to connect
        to as they are."""
        literal = host.strip("[]")
        try:
            _address(literal)
            addresses = [literal]
        except ValueError:
            try:
                addresses = await self.resolver(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            self.check_address(host, address)
        return addresses

    def transport(self, **options: Any) -> httpx.AsyncHTTPTransport:
        """An httpx transport whose connections go only to checked addresses."""
        transport = httpx.AsyncHTTPTransport(trust_env=False, **options)
        pool = transport._pool
        pool._network_backend = _PinnedCore(self, pool._network_backend, httpcore.ConnectError)
        return transport

    def transport2(self, **options: Any) -> httpx2.AsyncHTTPTransport:
        """The same for httpx2 (the MCP SDK's HTTP client)."""
        transport = httpx2.AsyncHTTPTransport(trust_env=False, **options)
        pool = transport._pool
        pool._network_backend = _PinnedCore2(self, pool._network_backend, httpcore2.ConnectError)
        return transport


class _Pinned:
    """An httpcore network backend that connects to the addresses the policy checked."""

    def __init__(self, policy: EgressPolicy, inner: Any, connect_error: type[Exception]) -> None:
        self.policy = policy
        self.inner = inner
        self.connect_error = connect_error

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        try:
            addresses = await self.policy.resolve(host, port)
        except httpcore.ConnectError as exc:
            raise self.connect_error(str(exc)) from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except self.connect_error as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, *args: Any, **kwargs: Any) -> Any:
        raise self.connect_error("tools may not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _PinnedCore(_Pinned, httpcore.AsyncNetworkBackend):
    """For httpx."""


class _PinnedCore2(_Pinned, httpcore2.AsyncNetworkBackend):
    """For httpx2."""

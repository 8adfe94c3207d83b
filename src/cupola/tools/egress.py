"""Where server-side tools may send requests: a deny-by-default allowlist from cupola.yaml."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from cupola.exceptions import UserError
from cupola.settings import ToolSettings


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
    return host == pattern


class EgressPolicy:
    """Checks outbound URLs against ``tools.allowed_hosts`` (and loopback in development)."""

    def __init__(self, settings: ToolSettings) -> None:
        self.settings = settings

    def check(self, url: str, *, what: str = "tool") -> None:
        """Raise :class:`EgressDenied` unless ``url`` may be called."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EgressDenied(f"{what} URL {url!r} is not an http(s) URL", code="egress_denied")
        host = parts.hostname.lower()
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

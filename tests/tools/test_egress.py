"""The outbound allowlist: deny by default, loopback only in development."""

from __future__ import annotations

import pytest

from cupola.settings import ToolSettings
from cupola.tools.egress import EgressDenied, EgressPolicy


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:9000/mcp", True),
        ("http://localhost/x", True),
        ("http://[::1]:8080/", True),
        ("https://api.example.com/v1", True),
        ("https://API.EXAMPLE.COM/v1", True),
        ("https://eu.tools.example.org/x", True),
        ("https://tools.example.org/x", False),
        ("http://internal.example.net:8443/", True),
        ("http://internal.example.net:8080/", False),
        ("https://evil.example.com.attacker.io/", False),
        ("http://10.0.0.5/", False),
        ("ftp://api.example.com/", False),
        ("not a url", False),
    ],
)
def test_allowlist(url: str, allowed: bool) -> None:
    policy = EgressPolicy(
        ToolSettings(
            allowed_hosts=["api.example.com", "*.tools.example.org", "internal.example.net:8443"],
            allow_loopback=True,
        )
    )
    if allowed:
        policy.check(url)
    else:
        with pytest.raises(EgressDenied):
            policy.check(url)


def test_loopback_can_be_turned_off() -> None:
    policy = EgressPolicy(ToolSettings(allow_loopback=False))
    with pytest.raises(EgressDenied, match="allow_loopback"):
        policy.check("http://127.0.0.1:8000/")

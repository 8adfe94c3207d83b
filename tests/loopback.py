"""Serving a test's fake upstream (any ASGI app) on an ephemeral loopback port, in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol


@dataclass
class Connections:
    """The TCP connections a served app has accepted in all, and how many are open now."""

    accepted: int = 0
    open: int = 0

    def protocol(self) -> type[asyncio.Protocol]:
        """uvicorn's HTTP protocol, counting into this object."""
        counts = self

        class Counting(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
            def connection_made(self, transport: Any) -> None:
                counts.accepted += 1
                counts.open += 1
                super().connection_made(transport)

            def connection_lost(self, exc: Exception | None) -> None:
                counts.open -= 1
                super().connection_lost(exc)

        return Counting


@contextmanager
def serve_app(
    app: Any,
    name: str,
    cert: tuple[Path, Path] | None = None,
    connections: Connections | None = None,
) -> Iterator[int]:
    """Serve ``app`` on 127.0.0.1 while in the block (over TLS with ``cert``, a certificate
    and key file); yields the port. ``connections`` counts the TCP connections accepted."""
    options: dict[str, Any] = {}
    if cert is not None:
        options = {"ssl_certfile": str(cert[0]), "ssl_keyfile": str(cert[1])}
    if connections is not None:
        options["http"] = connections.protocol()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        log_level="critical",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)

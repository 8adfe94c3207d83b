"""A real cupola server on an ephemeral loopback port, for tests that drive it with SDKs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from cupola.server.app import build_services, create_app
from cupola.server.services import Services
from cupola.settings import DeploymentConfig, ScriptStep, Settings

WEATHER_SCRIPT = [
    ScriptStep(match=r'"temperature_c"', reply="It is sunny in Tokyo, twenty degrees."),
    ScriptStep(
        match=r"(?i)weather",
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Tokyo"}}],
    ),
    ScriptStep(reply="How can I help with your trip?"),
]


SEARCH_SCRIPT = [
    ScriptStep(match=r"30 days", reply="Refunds are accepted within 30 days."),
    ScriptStep(
        match=r"(?i)refund",
        tool_calls=[{"name": "file_search", "arguments": {"queries": ["refund policy"]}}],
    ),
    ScriptStep(reply="Nothing to search."),
]
API_SCRIPT = [
    ScriptStep(match=r'"plan"', reply="You are on the pro plan."),
    ScriptStep(match=r"(?i)error|not in tools.allowed_hosts", reply="The call failed."),
    ScriptStep(match=r"(?i)who am i", tool_calls=[{"name": "accounts_whoAmI", "arguments": {}}]),
    ScriptStep(reply="Ask me who you are."),
]


def test_deployments() -> list[DeploymentConfig]:
    return [
        DeploymentConfig(name="echo", provider="scripted", mode="echo"),
        DeploymentConfig(
            name="weather-bot", provider="scripted", mode="script", script=WEATHER_SCRIPT
        ),
        DeploymentConfig(name="searcher", provider="scripted", mode="script", script=SEARCH_SCRIPT),
        DeploymentConfig(name="api-bot", provider="scripted", mode="script", script=API_SCRIPT),
        DeploymentConfig(name="local-small", provider="embedded"),
        DeploymentConfig(
            name="unreachable",
            provider="openai",
            model="gpt-4o",
            base_url=f"http://127.0.0.1:{free_port()}/v1",
            timeout=5,
        ),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A running server; ``url`` is the root, ``project_url`` what AIProjectClient takes."""

    settings: Settings
    services: Services
    url: str
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def project_url(self) -> str:
        return f"{self.url}/api/projects/{self.settings.project}"

    @property
    def openai_url(self) -> str:
        return f"{self.project_url}/openai/v1"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "project": "default",
        "data_dir": tempfile.mkdtemp(prefix="cupola-test-"),
        "database_url": database_url,
        "deployments": test_deployments(),
        "default_deployment": "echo",
    }
    data.update(overrides)
    return Settings.model_validate(data)


def start_server(settings: Settings, services: Services | None = None, **ssl: Any) -> LiveServer:
    services = services or build_services(settings)
    app = create_app(settings, services)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1, **ssl
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    scheme = "https" if ssl else "http"
    return LiveServer(settings, services, f"{scheme}://127.0.0.1:{port}", server, thread)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test session, dropped afterwards."""
    name = f"cupola_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class StaticToken:
    """A TokenCredential that always returns the same token (for azure-ai-projects)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("static-test-token", int(time.time()) + 3600)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, for HTTPS test servers."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def serve_process(
    config: Path,
    *args: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    output: Path | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``cupola serve`` as users run it: its own process (uvloop), the environment without
    ``CUPOLA_*`` (plus ``env``), output to ``output`` or a pipe. Yields the base URL once
    ``/healthz`` answers, and the process; terminates it afterwards."""
    port = port or free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CUPOLA_")}
    environ.update(env or {})
    command = [sys.executable, "-m", "cupola.cli", "serve", "--config", str(config)]
    with output.open("wb") if output else contextlib.nullcontext(subprocess.PIPE) as out:
        proc = subprocess.Popen(
            [*command, "--port", str(port), *args],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def said() -> str:
        if output is not None:
            return output.read_text(errors="replace")
        return proc.stdout.read().decode(errors="replace") if proc.stdout else ""

    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, said()
            assert time.monotonic() < deadline, "cupola serve did not start"
            time.sleep(0.05)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)

"""Shared fixtures: a live server per database backend (SQLite always; PostgreSQL when
CUPOLA_TEST_POSTGRES_URL is set, as .ci/run does)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.ai.projects import AIProjectClient

from live_server import (
    LiveServer,
    StaticToken,
    make_settings,
    postgres_database,
    self_signed_cert,
    start_server,
)

POSTGRES_URL = os.environ.get("CUPOLA_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database of each backend under test."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "cupola.db"
        yield f"sqlite:///{path}"
    else:
        assert POSTGRES_URL is not None
        with postgres_database(POSTGRES_URL) as url:
            yield url


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[LiveServer]:
    """A live cupola server on loopback (no API key needed), one per backend."""
    live = start_server(make_settings(database_url))
    yield live
    live.stop()


@pytest.fixture
def unique() -> str:
    """A short random suffix so tests sharing a server never collide on names."""
    return secrets.token_hex(4)


@pytest.fixture(scope="session")
def tls(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Path]]:
    """A live server over HTTPS (azure-ai-projects sends tokens only over TLS) and the path
    of its self-signed certificate."""
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    live = start_server(make_settings(database_url), ssl_certfile=str(cert), ssl_keyfile=str(key))
    yield live, cert
    live.stop()


@pytest.fixture
def project(tls: tuple[LiveServer, Path]) -> Iterator[AIProjectClient]:
    """An AIProjectClient on the HTTPS server, with a static token credential."""
    live, cert = tls
    with AIProjectClient(
        endpoint=live.project_url, credential=StaticToken(), connection_verify=str(cert)
    ) as client:
        yield client

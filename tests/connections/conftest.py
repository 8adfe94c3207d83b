"""A live server for the connection tests whose data directory (where the secrets key file
is created) is a temporary one, never the working directory's ``.cupola``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import LiveServer, make_settings, start_server


@pytest.fixture(scope="session")
def connections_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("connections-data")


@pytest.fixture(scope="session")
def conn_server(database_url: str, connections_data_dir: Path) -> Iterator[LiveServer]:
    """A live cupola server on loopback (no API key needed), keeping its key file in a
    temporary data directory."""
    live = start_server(make_settings(database_url, data_dir=connections_data_dir))
    yield live
    live.stop()

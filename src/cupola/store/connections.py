"""Store for connections (filled in by its owner)."""

from __future__ import annotations

from cupola.store.base import SqlBase


class ConnectionStore(SqlBase):
    pass

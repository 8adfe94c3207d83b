"""Store for files (filled in by its owner)."""

from __future__ import annotations

from cupola.store.base import SqlBase


class FileStore(SqlBase):
    pass

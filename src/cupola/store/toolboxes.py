"""Store for toolboxes (filled in by its owner)."""

from __future__ import annotations

from cupola.store.base import SqlBase


class ToolboxStore(SqlBase):
    pass

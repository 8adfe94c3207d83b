"""Identifiers and clocks, in the shapes the OpenAI and Foundry APIs use."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    """``<prefix>_<48 hex>``, e.g. ``resp_…``, ``conv_…``, ``msg_…``."""
    return f"{prefix}_{secrets.token_hex(24)}"


def sortable_id(prefix: str) -> str:
    """``<prefix><32 hex>``, in creation order (nanosecond clock first, then randomness), so
    ids paginate the way objects were created."""
    return f"{prefix}{time.time_ns():016x}{secrets.token_hex(8)}"


def now() -> int:
    """Unix time in whole seconds, as ``created_at`` fields carry it."""
    return int(time.time())

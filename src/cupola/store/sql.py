"""The store cupola runs on: every persisted resource behind one object."""

from __future__ import annotations

from cupola.store.agents import AgentStore
from cupola.store.connections import ConnectionStore
from cupola.store.conversations import ConversationStore
from cupola.store.files import FileStore
from cupola.store.keys import KeyStore
from cupola.store.responses import ResponseStore
from cupola.store.toolboxes import ToolboxStore
from cupola.store.traces import TraceStore
from cupola.store.versions import LabelStore


class SqlStore(
    AgentStore,
    ToolboxStore,
    LabelStore,
    ConversationStore,
    ResponseStore,
    KeyStore,
    ConnectionStore,
    FileStore,
    TraceStore,
):
    """Agents and toolboxes (versioned, with labels), conversations, responses, keys,
    connections, files and trace spans on one SQLAlchemy engine.

    Each method is one transaction. Async methods run off the event loop (SQLite writes go
    through one batching writer thread); ``*_sync`` methods are for the CLI.
    """

"""The store cupola runs on: every persisted resource behind one object."""

from __future__ import annotations

from cupola.store.agents import AgentStore
from cupola.store.conversations import ConversationStore
from cupola.store.keys import KeyStore
from cupola.store.responses import ResponseStore


class SqlStore(AgentStore, ConversationStore, ResponseStore, KeyStore):
    """Agents, conversations, responses and keys on one SQLAlchemy engine.

    Each method is one transaction. Async methods run in a worker thread so the event loop
    never blocks on the database; ``*_sync`` methods are for the CLI.
    """

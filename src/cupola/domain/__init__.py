"""Plain data: agent versions, conversations, API keys, pages of results."""

from cupola.domain.records import AgentVersion, ApiKey, Conversation, Page, Role, StoredResponse

__all__ = ["AgentVersion", "ApiKey", "Conversation", "Page", "Role", "StoredResponse"]

"""What an upstream MCP server asks of its client during one tool call, and who answers.

A server may, while running a tool, send log messages and ask its client to sample a model
(``sampling/createMessage``) or to ask the user something (``elicitation/create``). When
cupola calls the tool on behalf of another MCP client (a toolbox endpoint's caller), those
belong to that caller: a :class:`Relay` carries them back to it. The pool runs such calls on a
session of their own (see ``McpPool.call_tool``), so nothing one caller is asked reaches
another.
"""

from __future__ import annotations

from typing import Protocol

from mcp_types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
    ElicitRequestParams,
    ElicitResult,
    ErrorData,
    LoggingLevel,
    LoggingMessageNotificationParams,
)

LOG_LEVELS: tuple[LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
"""The MCP (syslog) levels, least severe first."""


def at_least(level: LoggingLevel, threshold: LoggingLevel | None) -> bool:
    """Whether a message at ``level`` passes a ``threshold`` (None lets nothing through)."""
    if threshold is None:
        return False
    return LOG_LEVELS.index(level) >= LOG_LEVELS.index(threshold)


class Relay(Protocol):
    """The caller an upstream server's requests and log messages go back to."""

    @property
    def log_level(self) -> LoggingLevel | None:
        """The least severe level the caller wants log messages at; None for none."""

    async def log(self, params: LoggingMessageNotificationParams) -> None:
        """Pass on one log message."""

    async def sample(
        self, params: CreateMessageRequestParams
    ) -> CreateMessageResult | CreateMessageResultWithTools | ErrorData:
        """Ask the caller's client to sample its model."""

    async def elicit(self, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        """Ask the caller's user for input."""

"""``mcp_servers``: MCP servers the operator declares in cupola.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from cupola.settings.section import Section as _Section


class McpToolFilter(_Section):
    """Which of a server's tools a rule matches (both conditions, when both are given)."""

    tool_names: list[str] | None = None
    """Tools by name, as the server lists them."""
    read_only: bool | None = None
    """Tools by their ``readOnlyHint`` annotation."""


class McpApprovalPolicy(_Section):
    """Per-tool approval: a tool ``always`` matches waits for the client, one ``never``
    matches runs; any other tool waits unless only ``always`` is given."""

    always: McpToolFilter | None = None
    never: McpToolFilter | None = None


class McpServerConfig(_Section):
    """An MCP server declared by the operator, used by name: a request, an agent or a toolbox
    names it with ``{"type": "mcp", "server_label": NAME}`` and cannot change where it runs.

    Either a local server spoken to over stdio (``command``, with ``args``, ``env``, ``cwd``)
    or a remote one over streamable HTTP (``url``, with ``headers``, ``authorization`` or a
    project ``connection``). The shape follows the ``mcpServers`` entries of Claude Code,
    Codex and VS Code, so an existing entry can be pasted in."""

    type: Literal["stdio", "http", "streamable_http", "streamable-http"] | None = None
    """Optional, as in Claude Code's and VS Code's files: ``stdio`` needs ``command``,
    ``http`` needs ``url``. Inferred from which of the two is given."""
    command: str | list[str] | None = None
    """The program that serves MCP over stdio (``python`` means the server's own
    interpreter). A list is the program followed by its first arguments."""
    args: list[str] = Field(default_factory=list)
    """The program's arguments (after those of a list ``command``)."""
    env: dict[str, SecretStr] = Field(default_factory=dict)
    """Environment variables for the process, on top of a minimal safe environment (``PATH``,
    ``HOME``, ...: the server's own variables are not passed on). Values are secrets: write
    ``${GITHUB_TOKEN}`` rather than a literal; they never appear in a response or a log."""
    cwd: Path | None = None
    """The process's working directory; relative to cupola.yaml, which is also the
    default."""
    url: str | None = None
    """The server's streamable-HTTP endpoint. It still passes ``tools.allowed_hosts`` (and
    ``tools.allow_loopback`` for this machine)."""
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """HTTP headers sent with every request to ``url`` (secrets, like ``env``)."""
    authorization: SecretStr | None = None
    """A bearer token for ``url``, sent as ``Authorization: Bearer ...``."""
    connection: str | None = None
    """A project connection (``cupola connections``) whose credential becomes headers."""
    description: str | None = None
    """What the server is for (echoed as ``server_description``)."""
    allowed_tools: list[str] | McpToolFilter | None = None
    """The tools the model may see and call (all when unset). A request may narrow this
    list, never widen it."""
    require_approval: Literal["always", "never"] | McpApprovalPolicy = "always"
    """Whether a call waits for the client's ``mcp_approval_response``. A request may ask for
    approval where this says ``never``, not the other way round."""
    startup_timeout_seconds: float | None = Field(default=None, gt=0)
    """How long starting (or connecting to) the server may take; default
    ``tools.timeout_seconds``. Raise it for servers that install themselves on first start
    (``npx -y ...``, ``uvx ...``)."""
    timeout_seconds: float | None = Field(default=None, gt=0)
    """How long one tool call may take; default ``tools.timeout_seconds``."""
    enabled: bool = True
    """``false`` keeps the declaration but refuses requests that name it."""

    @field_validator("command")
    @classmethod
    def _valid_command(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and (not value or not all(value)):
            raise ValueError("command must be a non-empty list of non-empty strings")
        if isinstance(value, str) and not value.strip():
            raise ValueError("command must not be empty")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        stdio = self.command is not None
        if stdio == (self.url is not None):
            raise ValueError("an MCP server needs exactly one of command (stdio) or url (http)")
        if self.type is not None and (self.type == "stdio") != stdio:
            need = "command" if self.type == "stdio" else "url"
            raise ValueError(f"type {self.type} needs {need}")
        if stdio:
            for key in ("headers", "authorization", "connection"):
                if getattr(self, key):
                    raise ValueError(f"{key} applies to url only, not to command")
        else:
            for key in ("args", "env", "cwd"):
                if getattr(self, key):
                    raise ValueError(f"{key} applies to command only, not to url")
            parts = urlsplit(self.url or "")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("url must be an http(s) URL")
        return self

    @property
    def argv(self) -> list[str] | None:
        """The command line (program, then arguments) of a stdio server, else None."""
        if self.command is None:
            return None
        head = [self.command] if isinstance(self.command, str) else list(self.command)
        return [*head, *self.args]

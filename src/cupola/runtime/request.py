"""The body of ``POST /responses``, validated liberally (as clients really send it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from cupola.domain.versions import Selector, parse_selector


def check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    """OpenAI's metadata limits: 16 keys, keys ≤ 64 characters, values ≤ 512."""
    if value is None:
        return None
    if len(value) > 16:
        raise ValueError("metadata holds at most 16 keys")
    for key, val in value.items():
        if len(key) > 64:
            raise ValueError(f"metadata key {key[:20]!r}... is longer than 64 characters")
        if len(val) > 512:
            raise ValueError(f"metadata value of {key!r} is longer than 512 characters")
    return value


Metadata = Annotated[dict[str, str] | None, AfterValidator(check_metadata)]
"""A metadata map within OpenAI's limits."""


class AgentReference(BaseModel):
    """Which agent serves the request: ``{"type": "agent_reference", "name", "version"?}``."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=64)
    version: str | int | None = None
    type: str | None = "agent_reference"

    def selector(self) -> Selector:
        """The version meant: a number, a label (``prod``; ``latest``), or None (latest)."""
        return parse_selector(self.version, "agent_reference.version")


class ConversationRef(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str


class CreateResponse(BaseModel):
    """Every field of the Responses create body cupola reads; unknown fields are ignored."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[Any] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    agent_reference: AgentReference | None = None
    agent: AgentReference | None = None
    """The older name of ``agent_reference``."""
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=1)
    parallel_tool_calls: StrictBool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    metadata: Metadata = None
    stream: StrictBool | None = None
    store: StrictBool | None = None
    background: StrictBool | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    user: str | None = None
    include: list[str] | None = None
    client_metadata: dict[str, Any] | None = None
    """Ignored: the ids Codex CLI sends for OpenAI's telemetry (session, turn, installation);
    they are not model input, and too long for ``metadata`` (docs/codex.md)."""

    @property
    def agent_ref(self) -> AgentReference | None:
        return self.agent_reference or self.agent

    @property
    def conversation_id(self) -> str | None:
        if isinstance(self.conversation, ConversationRef):
            return self.conversation.id
        return self.conversation


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """Model parameters the Responses body has no field for, which the Chat Completions and
    Messages endpoints carry; applied to a prepared request by ``Prepared.use_options``.
    Unset fields (None, empty) leave the prepared request as it was."""

    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool | None = None
    logit_bias: dict[str, float] | None = None
    max_completion_tokens: int | None = None
    """The cap on visible plus reasoning tokens, as a Chat Completions client sets it."""

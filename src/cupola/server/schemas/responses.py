"""The Response object as the Open Responses spec (``ResponseResource``) defines it: every
field it requires is required here, with the spec's types. Output items are described by
their ``type`` (cupola also emits MCP and code-interpreter items the spec does not list)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from cupola.server.schemas.common import Item


class IncompleteDetails(BaseModel):
    reason: str


class ResponseError(BaseModel):
    code: str
    message: str


class TextField(BaseModel):
    model_config = ConfigDict(extra="allow")
    format: dict[str, Any]
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(BaseModel):
    model_config = ConfigDict(extra="allow")
    effort: str | None
    summary: str | None


class InputTokensDetails(BaseModel):
    cached_tokens: int


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens_details: OutputTokensDetails


class ConversationId(BaseModel):
    id: str


class ResponseObject(BaseModel):
    """A response (Open Responses ``ResponseResource``)."""

    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["response"]
    created_at: int
    completed_at: int | None
    status: str
    incomplete_details: IncompleteDetails | None
    model: str
    previous_response_id: str | None
    instructions: str | list[Item] | None
    output: list[Item]
    error: ResponseError | None
    tools: list[dict[str, Any]]
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any]
    truncation: Literal["auto", "disabled"]
    parallel_tool_calls: bool
    text: TextField
    top_p: float
    presence_penalty: float
    frequency_penalty: float
    top_logprobs: int
    temperature: float
    reasoning: Reasoning | None
    usage: Usage | None
    max_output_tokens: int | None
    max_tool_calls: int | None
    store: bool
    background: bool
    service_tier: str
    metadata: dict[str, str]
    safety_identifier: str | None
    prompt_cache_key: str | None
    conversation: ConversationId | None = None

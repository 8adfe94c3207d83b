"""Shapes every API shares: errors, list pages, deletion receipts."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """Every error, in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorDetail


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicError(BaseModel):
    """An error in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``."""

    type: Literal["error"]
    error: AnthropicErrorDetail


class Page(BaseModel, Generic[T]):
    """The OpenAI list shape."""

    object: Literal["list"]
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ValueList(BaseModel, Generic[T]):
    """Foundry's list shape: ``{"value": [...]}``."""

    value: list[T]


class Deleted(BaseModel):
    """A deletion receipt: ``{"id", "object", "deleted": true}``."""

    id: str
    object: str
    deleted: bool


class Item(BaseModel):
    """A conversation or response item: a message, a function or MCP call or its output, a
    reasoning item ... (``type`` says which; each type's fields follow the Responses API)."""

    model_config = ConfigDict(extra="allow")
    type: str
    id: str | None = None


class Status(BaseModel):
    status: Literal["ok"]
    version: str


class OpenAPIDocument(BaseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]

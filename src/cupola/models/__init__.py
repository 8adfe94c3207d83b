"""Models: one adapter per wire API, resolved from deployment names by the registry."""

from cupola.models.base import (
    ChatMessage,
    Finish,
    FunctionSpec,
    Model,
    ModelEvent,
    ModelRequest,
    ModelResult,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    complete,
)
from cupola.models.registry import ModelRegistry, build_model

__all__ = [
    "ChatMessage",
    "Finish",
    "FunctionSpec",
    "Model",
    "ModelEvent",
    "ModelRegistry",
    "ModelRequest",
    "ModelResult",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "build_model",
    "complete",
]

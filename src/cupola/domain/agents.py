"""Agent definitions: validation of what ``create_version`` accepts, and the wire shapes."""

from __future__ import annotations

import re
from typing import Any

from cupola.domain.records import AgentVersion
from cupola.exceptions import UserError

AGENT_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})$")
PROMPT_FIELDS = (
    "kind",
    "model",
    "instructions",
    "temperature",
    "top_p",
    "reasoning",
    "tools",
    "tool_choice",
    "text",
    "structured_inputs",
    "rai_config",
)


def check_agent_name(name: str) -> str:
    if not AGENT_NAME.match(name):
        raise UserError(
            "an agent name is 1-63 letters, digits, '-' or '_', starting with a letter or digit",
            param="agent_name",
            code="invalid_name",
        )
    return name


def _number(definition: dict[str, Any], key: str, low: float, high: float) -> None:
    value = definition.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise UserError(
            f"definition.{key} must be a number from {low} to {high}", param=f"definition.{key}"
        )


def version_object(v: AgentVersion) -> dict[str, Any]:
    """``AgentVersionDetails`` as azure-ai-projects parses it."""
    return {
        "object": "agent.version",
        "id": f"{v.name}:{v.version}",
        "name": v.name,
        "version": str(v.version),
        "description": v.description,
        "created_at": v.created_at,
        "metadata": v.metadata,
        "status": "active",
        "definition": v.definition,
    }


def agent_object(latest: AgentVersion) -> dict[str, Any]:
    """``AgentDetails``: the agent with its latest version."""
    return {
        "object": "agent",
        "id": latest.name,
        "name": latest.name,
        "state": "enabled",
        "configuration_state": "enabled",
        "versions": {"latest": version_object(latest)},
    }


def check_definition(definition: Any) -> dict[str, Any]:
    """A prompt agent definition, checked field by field (the deployment is checked by the
    caller, which knows the configured deployments)."""
    from cupola.runtime.prepare import check_text_format, check_tool_choice
    from cupola.tools import normalize_tools

    if not isinstance(definition, dict):
        raise UserError("definition must be an object", param="definition")
    kind = definition.get("kind", "prompt")
    if kind != "prompt":
        raise UserError(
            f"agent kind {kind!r} is not supported by this server (supported: prompt)",
            param="definition.kind",
            code="unsupported_agent_kind",
        )
    model = definition.get("model")
    if not isinstance(model, str) or not model:
        raise UserError("definition.model must name a deployment", param="definition.model")
    instructions = definition.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise UserError("definition.instructions must be a string", param="definition.instructions")
    _number(definition, "temperature", 0, 2)
    _number(definition, "top_p", 0, 1)
    tools = normalize_tools(definition.get("tools"), "definition.tools")
    check_tool_choice(definition.get("tool_choice"), tools)
    if definition.get("text") is not None:
        if not isinstance(definition["text"], dict):
            raise UserError("definition.text must be an object", param="definition.text")
        check_text_format(definition["text"])
    reasoning = definition.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise UserError("definition.reasoning must be an object", param="definition.reasoning")
    return {**definition, "kind": "prompt"}

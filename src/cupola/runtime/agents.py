"""Agent definitions as ``create_version`` accepts them: the pure checks of
``cupola.domain.agents`` plus the tools, tool choice and text format, which need the tool
registry."""

from __future__ import annotations

from typing import Any

from cupola.domain.agents import check_number
from cupola.exceptions import UserError
from cupola.runtime.prepare import check_text_format, check_tool_choice
from cupola.tools import normalize_tools


def check_definition(definition: Any) -> dict[str, Any]:
    """A prompt agent definition, checked field by field (the deployment is checked by the
    caller, which knows the configured deployments)."""
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
    check_number(definition, "temperature", 0, 2)
    check_number(definition, "top_p", 0, 1)
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

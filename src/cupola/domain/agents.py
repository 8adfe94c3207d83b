"""Agent names and definitions: the pure checks (the checks that need the tool registry are
``cupola.runtime.agents.check_definition``)."""

from __future__ import annotations

import re
from typing import Any

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


def check_number(definition: dict[str, Any], key: str, low: float, high: float) -> None:
    """``definition[key]``, when present, is a number from ``low`` to ``high``."""
    value = definition.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise UserError(
            f"definition.{key} must be a number from {low} to {high}", param=f"definition.{key}"
        )

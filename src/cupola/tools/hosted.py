"""Tool types cupola has no provider for, and the one rule they follow.

OpenAI and Foundry clients send tool types the platform itself runs (web search, image
generation, Bing grounding ...) or that need call items a chat model cannot produce (computer
use, a local shell, freeform ``custom`` tools). A tool in a request is an offer the model may
take up: so a type listed here is **left out** of the tools the model sees, the response runs,
and its ``metadata`` records what was left out under ``cupola.omitted_tools`` (a JSON list of
the types). Only a ``tool_choice`` that forces such a tool is refused (400), since the response
could not do what it asks. A type cupola serves (``function``, ``namespace``, ``mcp``,
``file_search``, ``code_interpreter``, ``openapi``, ``toolbox``) runs; a type that is in
neither list is a mistake in the request (400).

When a provider for one of these types is added, its type moves to the served types of
:mod:`cupola.tools.registry` and out of this table.
"""

from __future__ import annotations

from typing import Any

import orjson

from cupola.exceptions import UserError

UNSERVED: dict[str, str] = {
    # OpenAI hosted tools (openai SDK `Tool`; Codex CLI sends web_search by default)
    "web_search": "web search",
    "web_search_2025_08_26": "web search",
    "web_search_preview": "web search",
    "web_search_preview_2025_03_11": "web search",
    "image_generation": "image generation",
    "tool_search": "hosted tool search",
    "programmatic_tool_calling": "programmatic tool calling",
    # client-run tools whose calls are item types a chat model cannot produce
    "computer": "computer use",
    "computer_use_preview": "computer use",
    "local_shell": "the local shell tool",
    "shell": "the shell tool",
    "apply_patch": "the apply_patch tool",
    "custom": "freeform custom tools",
    # Foundry hosted tools (azure-ai-projects `ToolType`)
    "bing_grounding": "Bing grounding",
    "bing_custom_search_preview": "Bing custom search",
    "azure_ai_search": "Azure AI Search",
    "azure_function": "Azure Functions",
    "sharepoint_grounding_preview": "SharePoint grounding",
    "fabric_dataagent_preview": "Fabric data agents",
    "browser_automation": "browser automation",
    "browser_automation_preview": "browser automation",
    "memory_search_preview": "memory search",
    "a2a": "agent-to-agent calls",
    "a2a_preview": "agent-to-agent calls",
    "web_iq_preview": "Web IQ",
    "work_iq_preview": "Work IQ",
    "fabric_iq_preview": "Fabric IQ",
    "toolbox_search_preview": "toolbox search",
    "github_copilot_toolset_preview": "the GitHub Copilot toolset",
    "microsoft_copilot_toolset_preview": "the Microsoft Copilot toolset",
    "capture_structured_outputs": "structured output capture",
}
"""Type -> what it is, for every tool type this server has no provider for."""

METADATA_KEY = "cupola.omitted_tools"
"""The response metadata key that lists the types left out."""


def is_unserved(kind: str) -> bool:
    return kind in UNSERVED


def split_unserved(tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The tools the response uses, and the types left out (in order, once each). A
    namespace loses its unserved members, and is left out itself when none remains."""
    kept: list[dict[str, Any]] = []
    omitted: list[str] = []

    def omit(kind: str) -> None:
        if kind not in omitted:
            omitted.append(kind)

    for tool in tools:
        kind = tool["type"]
        if is_unserved(kind):
            omit(kind)
        elif kind == "namespace":
            members = [m for m in tool["tools"] if not is_unserved(m["type"])]
            for member in tool["tools"]:
                if is_unserved(member["type"]):
                    omit(member["type"])
            if members:
                kept.append({**tool, "tools": members})
        else:
            kept.append(tool)
    return kept, omitted


def omitted_metadata(omitted: list[str]) -> dict[str, str]:
    """The response metadata that records the left-out types (nothing when none was)."""
    if not omitted:
        return {}
    return {METADATA_KEY: orjson.dumps(omitted).decode()}


def check_forced(choice: Any, kept: list[dict[str, Any]], omitted: list[str]) -> None:
    """Refuse a ``tool_choice`` that forces a tool this server cannot run: one of its types
    by name, or ``required`` when every tool was left out."""
    if isinstance(choice, dict):
        kind = choice.get("type")
        if isinstance(kind, str) and is_unserved(kind):
            raise UserError(
                f"tool_choice forces {kind!r} ({UNSERVED[kind]}), which this server has no "
                f"provider for; leave tool_choice 'auto' to run without it",
                param="tool_choice",
                code="unsupported_tool",
            )
    if choice == "required" and omitted and not kept:
        raise UserError(
            "tool_choice 'required' needs at least one tool this server can run; it has no "
            f"provider for {', '.join(repr(k) for k in omitted)}",
            param="tool_choice",
            code="unsupported_tool",
        )

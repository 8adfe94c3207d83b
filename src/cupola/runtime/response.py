"""The response object in the shape the Open Responses spec requires (every key present)."""

from __future__ import annotations

from typing import Any

import orjson

from cupola.exceptions import ErrorInfo
from cupola.models.base import CallReport, Usage

METADATA_VALUE_CHARS = 512
"""OpenAI's limit on a metadata value; cupola's own values keep within it."""


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def error_object(info: ErrorInfo) -> dict[str, str]:
    """A failed response's ``error`` (what ``response.failed`` carries): the error's own code,
    else ``model_error`` for a model's failure and ``server_error`` for anything else."""
    code = info.code or ("model_error" if info.type == "model_error" else "server_error")
    return {"code": code, "message": info.message}


def reasoning_object(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    if not raw:
        return None
    return {"effort": raw.get("effort"), "summary": raw.get("summary")}


def text_object(raw: dict[str, Any] | None) -> dict[str, Any]:
    fmt = (raw or {}).get("format") or {"type": "text"}
    if fmt.get("type") == "json_schema":
        fmt = {
            "type": "json_schema",
            "name": fmt.get("name", "response"),
            "description": fmt.get("description"),
            "schema": fmt.get("schema"),
            "strict": bool(fmt.get("strict", False)),
        }
    out: dict[str, Any] = {"format": fmt}
    if raw and raw.get("verbosity"):
        out["verbosity"] = raw["verbosity"]
    return out


def new_response(
    *,
    response_id: str,
    created_at: int,
    model: str,
    status: str,
    instructions: str | None,
    tools: list[dict[str, Any]],
    tool_choice: Any,
    temperature: float | None,
    top_p: float | None,
    max_output_tokens: int | None,
    text: dict[str, Any] | None,
    reasoning: dict[str, Any] | None,
    previous_response_id: str | None,
    conversation_id: str | None,
    metadata: dict[str, str],
    store: bool,
    background: bool,
    parallel_tool_calls: bool,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """A response with no output yet. ``extra`` carries the optional request echoes."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "completed_at": None,
        "status": status,
        "incomplete_details": None,
        "model": model,
        "previous_response_id": previous_response_id,
        "instructions": instructions,
        "output": [],
        "error": None,
        "tools": tools,
        "tool_choice": tool_choice if tool_choice is not None else "auto",
        "truncation": extra.get("truncation") or "disabled",
        "parallel_tool_calls": parallel_tool_calls,
        "text": text_object(text),
        "top_p": top_p if top_p is not None else 1.0,
        "presence_penalty": extra.get("presence_penalty") or 0.0,
        "frequency_penalty": extra.get("frequency_penalty") or 0.0,
        "top_logprobs": extra.get("top_logprobs") or 0,
        "temperature": temperature if temperature is not None else 1.0,
        "reasoning": reasoning_object(reasoning),
        "usage": None,
        "max_output_tokens": max_output_tokens,
        "max_tool_calls": extra.get("max_tool_calls"),
        "store": store,
        "background": background,
        "service_tier": extra.get("service_tier") or "default",
        "metadata": metadata,
        "safety_identifier": extra.get("safety_identifier"),
        "prompt_cache_key": extra.get("prompt_cache_key"),
    }
    if conversation_id:
        body["conversation"] = {"id": conversation_id}
    if extra.get("user"):
        body["user"] = extra["user"]
    return body


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _adjustments_value(report: CallReport) -> str:
    """The adjustments as compact JSON within 512 characters: whole entries when they fit,
    else without their details, else the first ones and ``"+N more"``."""
    full = [a.as_dict() for a in report.adjustments]
    short = [{"param": a.param, "action": a.action} for a in report.adjustments]
    for entries in (full, short):
        text = _json(entries)
        if len(text) <= METADATA_VALUE_CHARS:
            return text
    for keep in range(len(short) - 1, -1, -1):
        text = _json([*short[:keep], f"+{len(short) - keep} more"])
        if len(text) <= METADATA_VALUE_CHARS:
            return text
    return _json([f"+{len(short)} more"])


def report_metadata(report: CallReport, requested: str) -> dict[str, str]:
    """What a model call's report adds to the response ``metadata`` (``cupola.*`` keys).

    Nothing when the wrappers changed nothing (one attempt at the deployment named, no
    adjustment, no router): the metadata stays exactly what the client sent. Otherwise
    ``cupola.deployment`` and ``cupola.attempts``, plus ``cupola.adjustments``,
    ``cupola.route`` and ``cupola.failed_over`` when they have something to say."""
    served = report.deployment or requested
    plain = report.attempts <= 1 and served == requested
    if plain and not (report.adjustments or report.route or report.failed_over):
        return {}
    out = {
        "cupola.deployment": served,
        "cupola.attempts": str(report.attempts),
    }
    if report.adjustments:
        out["cupola.adjustments"] = _adjustments_value(report)
    if report.route is not None:
        route = {"deployment": report.route, "reason": report.route_reason or ""}
        text = _json(route)
        while len(text) > METADATA_VALUE_CHARS and len(route["reason"]) > 3:
            cut = len(text) - METADATA_VALUE_CHARS + 3
            route["reason"] = route["reason"][: max(len(route["reason"]) - cut, 0)] + "..."
            text = _json(route)
        out["cupola.route"] = text
    if report.failed_over:
        out["cupola.failed_over"] = _json(list(report.failed_over))
    return out

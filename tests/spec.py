"""Validation against the published Open Responses spec (a copy of shared/specs)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).parent / "compat" / "openresponses-openapi.json"
_EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedStreamingEvent",
    "response.queued": "ResponseQueuedStreamingEvent",
    "response.in_progress": "ResponseInProgressStreamingEvent",
    "response.completed": "ResponseCompletedStreamingEvent",
    "response.failed": "ResponseFailedStreamingEvent",
    "response.incomplete": "ResponseIncompleteStreamingEvent",
    "response.output_item.added": "ResponseOutputItemAddedStreamingEvent",
    "response.output_item.done": "ResponseOutputItemDoneStreamingEvent",
    "response.content_part.added": "ResponseContentPartAddedStreamingEvent",
    "response.content_part.done": "ResponseContentPartDoneStreamingEvent",
    "response.output_text.delta": "ResponseOutputTextDeltaStreamingEvent",
    "response.output_text.done": "ResponseOutputTextDoneStreamingEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaStreamingEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneStreamingEvent",
    "error": "ErrorStreamingEvent",
}


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    spec = json.loads(SPEC_PATH.read_text())
    registry: Registry[Any] = Registry().with_resource(
        "urn:openresponses", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"urn:openresponses#/components/schemas/{schema_name}"}, registry=registry
    )


def spec_errors(schema_name: str, value: Any) -> list[str]:
    """Every way ``value`` breaks the named schema (empty when it validates)."""
    return [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in _validator(schema_name).iter_errors(value)
    ]


def assert_valid_response(body: dict[str, Any]) -> None:
    errors = spec_errors("ResponseResource", body)
    assert not errors, errors


def assert_valid_event(event: dict[str, Any]) -> None:
    schema = _EVENT_SCHEMAS.get(event["type"])
    assert schema is not None, f"event type {event['type']!r} is not in the spec"
    errors = spec_errors(schema, event)
    assert not errors, (event["type"], errors)

"""The MCP server the conformance suite's tools scenarios expect (test_simple_text,
test_image_content, ...), as a stdio server; a toolbox bundles it so the suite exercises the
toolbox endpoint end to end. Run: python conformance_server.py"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import anyio
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

# A 1x1 PNG and a tiny WAV header, enough to be real media of their types.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()
WAV = base64.b64encode(b"RIFF$\x00\x00\x00WAVEfmt " + bytes(24)).decode()
SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}
EMPTY = {"type": "object", "properties": {}}
TOOLS = {
    "test_simple_text": EMPTY,
    "test_image_content": EMPTY,
    "test_audio_content": EMPTY,
    "test_embedded_resource": EMPTY,
    "test_multiple_content_types": EMPTY,
    "test_error_handling": EMPTY,
    "test_tool_with_progress": EMPTY,
    "json_schema_2020_12_tool": SCHEMA_2020_12,
    "test_tool_with_logging": EMPTY,
    "test_sampling": {
        "type": "object",
        "properties": {"prompt": {"type": "string"}},
        "required": ["prompt"],
    },
    "test_elicitation": {
        "type": "object",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
    },
}
USER_SCHEMA: Any = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "Your username"},
        "email": {"type": "string", "description": "Your email address"},
    },
    "required": ["username", "email"],
}


def text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def image() -> types.ImageContent:
    return types.ImageContent(type="image", data=PNG, mime_type="image/png")


def resource() -> types.EmbeddedResource:
    return types.EmbeddedResource(
        type="resource",
        resource=types.TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="Embedded resource."
        ),
    )


async def list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(
        tools=[
            types.Tool(name=name, description=f"conformance tool {name}", input_schema=schema)
            for name, schema in TOOLS.items()
        ]
    )


async def call_tool(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    name = params.name
    if name == "test_simple_text":
        content: list[Any] = [text("This is a simple text response for testing.")]
    elif name == "test_image_content":
        content = [image()]
    elif name == "test_audio_content":
        content = [types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")]
    elif name == "test_embedded_resource":
        content = [resource()]
    elif name == "test_multiple_content_types":
        content = [text("Multiple content types test:"), image(), resource()]
    elif name == "test_error_handling":
        return types.CallToolResult(
            content=[text("This tool intentionally returns an error for testing")], is_error=True
        )
    elif name == "test_tool_with_progress":
        meta: Any = params.meta or {}
        token = meta.get("progress_token") or meta.get("progressToken")
        for done in (0, 50, 100):
            if token is not None:
                await ctx.session.send_progress_notification(token, done, 100)
            await asyncio.sleep(0.05)
        content = [text("Progress test completed.")]
    elif name in ("test_tool_with_logging", "test_sampling", "test_elicitation"):
        content = await talk_to_client(ctx, params)
    elif name == "json_schema_2020_12_tool":
        content = [text(f"received {params.arguments}")]
    else:
        return types.CallToolResult(content=[text(f"unknown tool {name}")], is_error=True)
    return types.CallToolResult(content=content)


async def talk_to_client(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> list[Any]:
    """The tools that send the client log messages, or ask it to sample or elicit."""
    arguments = params.arguments or {}
    if params.name == "test_tool_with_logging":
        for message in ("Tool execution started", "Tool processing data", "Tool completed"):
            await ctx.session.send_log_message(
                "info", message, logger="conformance", related_request_id=ctx.request_id
            )
            await asyncio.sleep(0.05)
        return [text("Logging test completed.")]
    if params.name == "test_sampling":
        prompt = str(arguments.get("prompt", ""))
        reply = await ctx.session.create_message(
            [types.SamplingMessage(role="user", content=text(prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        said = reply.content.text if isinstance(reply.content, types.TextContent) else ""
        return [text(f"LLM response: {said}")]
    message = str(arguments.get("message", ""))
    answer = await ctx.session.elicit(message, USER_SCHEMA, related_request_id=ctx.request_id)
    return [text(f"User response: action={answer.action}, content={answer.content}")]


server: Server[Any] = Server("conformance", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)

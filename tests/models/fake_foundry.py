"""A loopback fake of a Foundry project's OpenAI endpoint, over HTTPS (azure-ai-projects
sends tokens only over TLS), for the ``foundry_agent`` adapter tests.

``POST /api/projects/{project}/openai/v1/conversations`` creates a conversation;
``POST .../openai/v1/responses`` with ``extra_body.agent_reference`` runs the named agent
in that conversation and streams Responses events (``response.created``,
``response.output_item.added``, ``response.output_text.delta``,
``response.function_call_arguments.delta``, ``response.completed`` ...), shaped as the
Responses API streams them. The fake keeps each conversation's items (the input it was
sent, then the output), so tests can see what the remote side holds. Answers are scripted
per agent name (see :class:`fake_upstreams.Answer`); unscripted agents echo the last user
message.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import orjson
from fake_upstreams import Answer, Event, FakeUpstream, Received
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PREFIX = "/api/projects/{project}/openai/v1"
AGENT_MODEL = "gpt-4.1-mini"


def _response(rid: str, status: str, output: list[dict[str, Any]], usage: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": 1733000000,
        "status": status,
        "model": AGENT_MODEL,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
        "error": None,
        "incomplete_details": None,
    }


def usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


class Events:
    """Builds one streamed response, numbering events and output items as the API does."""

    def __init__(self, rid: str = "resp_fake01") -> None:
        self.rid = rid
        self.events: list[Event] = []
        self.output: list[dict[str, Any]] = []
        self._seq = itertools.count()
        self.add("response.created", response=_response(rid, "in_progress", [], None))
        self.add("response.in_progress", response=_response(rid, "in_progress", [], None))

    def add(self, kind: str, **data: Any) -> Events:
        self.events.append((kind, {"type": kind, "sequence_number": next(self._seq), **data}))
        return self

    def message(self, pieces: Sequence[str], item_id: str = "msg_fake01") -> Events:
        index = len(self.output)
        item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant"}
        self.add("response.output_item.added", output_index=index, item={**item, "content": []})
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        self.add("response.content_part.added", **where, part=part)
        for piece in pieces:
            self.add("response.output_text.delta", **where, delta=piece, logprobs=[])
        text = "".join(pieces)
        self.add("response.output_text.done", **where, text=text, logprobs=[])
        done_part = {**part, "text": text}
        self.add("response.content_part.done", **where, part=done_part)
        done = {**item, "status": "completed", "content": [done_part]}
        self.add("response.output_item.done", output_index=index, item=done)
        self.output.append(done)
        return self

    def call(self, call_id: str, name: str, pieces: Sequence[str], item_id: str = "fc_1") -> Events:
        index = len(self.output)
        item = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": call_id,
            "name": name,
        }
        self.add("response.output_item.added", output_index=index, item=item)
        for piece in pieces:
            self.add(
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=index,
                delta=piece,
            )
        arguments = "".join(pieces)
        self.add(
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=index,
            arguments=arguments,
        )
        done = {**item, "status": "completed", "arguments": arguments}
        self.add("response.output_item.done", output_index=index, item=done)
        self.output.append(done)
        return self

    def mcp_call(self, name: str, arguments: str, output: str) -> Events:
        """A server-side MCP tool call of the remote agent (not part of the model's reply)."""
        index = len(self.output)
        item = {
            "id": f"mcp_{index}",
            "type": "mcp_call",
            "server_label": "retail-tools",
            "name": name,
            "arguments": arguments,
            "output": output,
            "status": "completed",
            "error": None,
        }
        self.add("response.output_item.added", output_index=index, item=item)
        self.add("response.output_item.done", output_index=index, item=item)
        self.output.append(item)
        return self

    def completed(self, prompt: int = 20, completion: int = 5, cached: int = 0) -> list[Event]:
        body = _response(self.rid, "completed", self.output, usage(prompt, completion, cached))
        self.add("response.completed", response=body)
        return self.events

    def failed(self, code: str, message: str) -> list[Event]:
        body = _response(self.rid, "failed", self.output, None)
        body["error"] = {"code": code, "message": message}
        self.add("response.failed", response=body)
        return self.events


def error_body(message: str, code: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class FakeFoundryProject(FakeUpstream):
    """A Foundry project's conversations and agent responses."""

    def __init__(self) -> None:
        super().__init__()
        self.conversations: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    def routes(self) -> list[Route]:
        return [
            Route(f"{PREFIX}/conversations", self._create_conversation, methods=["POST"]),
            Route(f"{PREFIX}/responses", self._responses, methods=["POST"]),
        ]

    def project_url(self, project: str = "proj") -> str:
        return f"{self.base_url}/api/projects/{project}"

    def received(self, key: str) -> list[Received]:
        return [
            r
            for r in self.requests
            if r.path.endswith("/responses")
            and (r.body.get("agent_reference") or {}).get("name") == key
        ]

    def conversations_created(self) -> int:
        return sum(r.path.endswith("/conversations") for r in self.requests)

    @staticmethod
    def _json(body: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(body), status, media_type="application/json")

    def _unauthorized(self, seen: Received) -> Response | None:
        auth = seen.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
            message = "Access denied due to missing or invalid authentication token."
            return self._json(error_body(message, "PermissionDenied"), 401)
        return None

    async def _create_conversation(self, request: Request) -> Response:
        seen = await self.record(request)
        denied = self._unauthorized(seen)
        if denied is not None:
            return denied
        cid = f"conv_{next(self._ids):024d}"
        self.conversations[cid] = list(seen.body.get("items") or [])
        return self._json(
            {"id": cid, "object": "conversation", "created_at": 1733000000, "metadata": {}}
        )

    async def _responses(self, request: Request) -> Response:
        seen = await self.record(request)
        denied = self._unauthorized(seen)
        if denied is not None:
            return denied
        reference = seen.body.get("agent_reference")
        if not isinstance(reference, dict) or reference.get("type") != "agent_reference":
            return self._json(error_body("agent_reference is required", "invalid_value"), 400)
        cid = seen.body.get("conversation")
        if cid is not None and cid not in self.conversations:
            message = f"Conversation with id '{cid}' not found."
            return self._json(error_body(message, "not_found"), 404)
        items = seen.body.get("input") or []
        answer = self.next_answer(str(reference.get("name")))
        if answer is None:
            last = next((i for i in reversed(items) if i.get("role") == "user"), {})
            answer = Answer(Events().message(["echo: ", str(last.get("content"))]).completed())
        if cid is not None and answer.status == 200:
            self.conversations[cid] += items
            self.conversations[cid] += _outputs(answer)
        return self.respond(answer)


def _outputs(answer: Answer) -> list[dict[str, Any]]:
    out = []
    for name, data in answer.events:
        if name == "response.output_item.done" and isinstance(data, dict):
            out.append(data["item"])
    return out

"""Everything checked before a response runs: a bad request fails here, with nothing stored."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from cupola.domain import AgentVersion
from cupola.domain.limits import check_schema_shape, strict_flag
from cupola.domain.records import Item
from cupola.exceptions import NotFound, UserError
from cupola.ids import new_id, now
from cupola.models.base import Model, ModelRequest
from cupola.models.registry import ModelRegistry
from cupola.runtime.items import check_call_outputs, normalize_input, to_messages
from cupola.runtime.request import CreateResponse, ModelOptions
from cupola.runtime.response import new_response
from cupola.store import Store
from cupola.tools import function_specs, normalize_tools
from cupola.tools.function import tool_key
from cupola.tools.hosted import check_forced, omitted_metadata, split_unserved
from cupola.tools.mcp.config import refuse_request_commands
from cupola.tools.namespace import check_served_names, namespace_map, served_name

_FORMAT_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
VERBOSITY = ("low", "medium", "high")
_LOGPROBS_INCLUDE = "message.output_text.logprobs"


@dataclass(slots=True)
class Prepared:
    """A validated request, ready to run."""

    project: str
    body: dict[str, Any]
    model: Model
    model_request: ModelRequest
    input_items: list[Item]
    conversation_id: str | None
    store: bool
    stream: bool
    background: bool
    server_tools: list[dict[str, Any]]
    """Tool entries the server runs (MCP, toolboxes, code interpreter, ...)."""
    approved: list[Item]
    """``mcp_approval_request`` items the client approved in this request: run them first."""
    history: list[Item]
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Served name -> (namespace, name) of the functions of namespace tools: how a call the
    model makes is named in its ``function_call`` item."""
    item_limit: int | None = None
    """``server.max_item_bytes``: the loop ends the run ``incomplete`` when an item the
    model writes grows past it (runtime/loop.py ``ItemCap``)."""

    def use_options(self, options: ModelOptions) -> None:
        """Apply the parameters only Chat Completions and Messages clients send."""
        r = self.model_request
        self.model_request = replace(
            r,
            stop=options.stop or r.stop,
            seed=options.seed if options.seed is not None else r.seed,
            logprobs=options.logprobs if options.logprobs is not None else r.logprobs,
            logit_bias=options.logit_bias if options.logit_bias is not None else r.logit_bias,
            max_completion_tokens=options.max_completion_tokens or r.max_completion_tokens,
        )
        self.model.check(self.model_request)


def check_verbosity(text: dict[str, Any] | None) -> str | None:
    """``text.verbosity``: low, medium or high (passed to reasoning models)."""
    value = (text or {}).get("verbosity")
    if value is not None and value not in VERBOSITY:
        raise UserError(
            f"text.verbosity must be one of {', '.join(VERBOSITY)}", param="text.verbosity"
        )
    return value if isinstance(value, str) else None


def check_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> Any:
    if choice is None or choice == "auto" or choice == "none":
        return choice
    if choice == "required":
        if not tools:
            raise UserError("tool_choice 'required' needs at least one tool", param="tool_choice")
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        names = {t.get("name") for t in tools if t["type"] == "function"} | set(
            namespace_map(tools)
        )
        name, space = choice.get("name"), choice.get("namespace")
        if isinstance(name, str) and isinstance(space, str):
            name = served_name(space, name)  # a function of a namespace tool
        if name not in names:
            raise UserError(
                f"tool_choice names function {choice.get('name')!r}, which is not among the tools",
                param="tool_choice",
            )
        return {"type": "function", "name": name}
    raise UserError(
        "tool_choice must be 'auto', 'none', 'required' or {'type': 'function', 'name': ...}",
        param="tool_choice",
    )


def check_text_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``text.format`` to constrain the model with, or None for plain text."""
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise UserError("text.format must be an object", param="text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise UserError(f"text.format.type {kind!r} is not supported", param="text.format.type")
    name, schema = fmt.get("name"), fmt.get("schema")
    if not isinstance(name, str) or not _FORMAT_NAME.match(name):
        raise UserError(
            "text.format.name must be 1-64 letters, digits, '_' or '-'", param="text.format.name"
        )
    if not isinstance(schema, dict):
        raise UserError(
            "text.format.schema must be a JSON Schema object", param="text.format.schema"
        )
    check_schema_shape(schema, "text.format.schema")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise UserError(
            f"text.format.schema is invalid: {exc.message}", param="text.format.schema"
        ) from None
    return {
        "type": "json_schema",
        "name": name,
        "schema": schema,
        "strict": bool(strict_flag(fmt.get("strict"), "text.format.strict")),
    }


def approved_requests(history: list[Item], new_items: list[Item]) -> list[Item]:
    """The approval requests this request approves. Each response must answer a request the
    server made, and only once."""
    requests = {
        i["id"]: i for i in [*history, *new_items] if i.get("type") == "mcp_approval_request"
    }
    answered = {
        i["approval_request_id"] for i in history if i.get("type") == "mcp_approval_response"
    } | {i.get("approval_request_id") for i in history if i.get("type") == "mcp_call"}
    approved = []
    for item in new_items:
        if item.get("type") != "mcp_approval_response":
            continue
        request_id = item["approval_request_id"]
        if request_id not in requests:
            raise UserError(
                f"no mcp_approval_request with id {request_id!r} to answer",
                param="input",
                code="invalid_approval",
            )
        if request_id in answered:
            raise UserError(
                f"approval request {request_id!r} was already answered",
                param="input",
                code="invalid_approval",
            )
        answered.add(request_id)
        if item["approve"]:
            approved.append(requests[request_id])
    return approved


def _with_warnings(metadata: dict[str, str], omitted: list[str]) -> dict[str, str]:
    """The response metadata: the client's, plus ``cupola.omitted_tools`` when tools were
    left out and the 16 keys metadata may hold leave room for it."""
    extra = omitted_metadata(omitted)
    if not extra or len(metadata) + len(extra) > 16:
        return metadata
    return {**metadata, **extra}


def _tools(agent_tools: Any, request_tools: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The run's tools (the agent's, then the request's) and the types left out: tools of a
    type this server has no provider for are left out (tools/hosted.py); a request's own
    tools never start a process; names must stay unique once namespaces are flattened."""
    tools, omitted = split_unserved(normalize_tools(agent_tools, "agent.tools"))
    taken = {tool_key(t) for t in tools}
    requested, left_out = split_unserved(normalize_tools(request_tools))
    refuse_request_commands(requested)  # a request never starts a process
    for tool in requested:
        if tool_key(tool) in taken:
            raise UserError(
                f"tool {tool_key(tool)!r} is already defined by the agent", param="tools"
            )
        tools.append(tool)
    omitted += [kind for kind in left_out if kind not in omitted]
    check_served_names(tools)
    return tools, omitted


class Preparer:
    """Resolves agent, deployment and history; validates everything the request names."""

    def __init__(self, store: Store, models: ModelRegistry, default_model: str | None) -> None:
        self.store = store
        self.models = models
        self.default_model = default_model

    async def _agent(self, project: str, req: CreateResponse) -> AgentVersion | None:
        ref = req.agent_ref
        if ref is None:
            return None
        return await self.store.get_agent_version(project, ref.name, ref.selector())

    def _model(self, agent: AgentVersion | None, req: CreateResponse) -> Model:
        if agent is not None:
            name = agent.definition.get("model")
            if not isinstance(name, str) or self.models_missing(name):
                raise UserError(
                    f"agent {agent.name!r} version {agent.version} uses deployment {name!r}, "
                    "which this server does not have",
                    param="agent_reference",
                    code="model_not_found",
                )
            return self.models.get(name)
        name = req.model or self.default_model
        if not name:
            raise UserError("model is required (or an agent_reference)", param="model")
        return self.models.get(name)

    def models_missing(self, name: str) -> bool:
        try:
            self.models.config(name)
        except NotFound:
            return True
        return False

    async def prepare(self, project: str, req: CreateResponse) -> Prepared:
        if req.conversation_id and req.previous_response_id:
            raise UserError(
                "conversation and previous_response_id cannot be used together",
                param="conversation",
            )
        store = req.store is not False
        background = bool(req.background)
        if background and not store:
            raise UserError("background responses must be stored (store=true)", param="background")
        agent = await self._agent(project, req)
        model = self._model(agent, req)
        definition = agent.definition if agent is not None else {}

        agent_tools = definition.get("tools")
        if agent_tools is None and req.tools is None:
            tools: list[dict[str, Any]] = []  # nothing to normalize, refuse or rename
            omitted: list[str] = []
        else:
            tools, omitted = _tools(agent_tools, req.tools)
        choice = req.tool_choice if req.tool_choice is not None else definition.get("tool_choice")
        check_forced(choice, tools, omitted)
        tool_choice = check_tool_choice(choice, tools)
        text = req.text if req.text is not None else definition.get("text")
        response_format = check_text_format(text)
        verbosity = check_verbosity(text)
        reasoning = req.reasoning if req.reasoning is not None else definition.get("reasoning")
        temperature = (
            req.temperature if req.temperature is not None else definition.get("temperature")
        )
        top_p = req.top_p if req.top_p is not None else definition.get("top_p")

        input_items = normalize_input(req.input)
        if not input_items and not req.previous_response_id and not req.conversation_id:
            raise UserError("input is required", param="input")
        history = await self.store.load_context(
            project,
            previous_response_id=req.previous_response_id,
            conversation_id=req.conversation_id,
        )
        check_call_outputs(history, input_items)
        approved = approved_requests(history, input_items)

        instructions = [
            text
            for text in (definition.get("instructions"), req.instructions)
            if isinstance(text, str) and text
        ]
        parallel = req.parallel_tool_calls is not False
        model_request = ModelRequest(
            messages=tuple(to_messages(instructions, [*history, *input_items])),
            tools=function_specs(tools) if tool_choice != "none" else (),
            tool_choice=tool_choice or "auto",
            temperature=temperature,
            top_p=top_p,
            max_output_tokens=req.max_output_tokens,
            response_format=response_format,
            reasoning_effort=(reasoning or {}).get("effort"),
            parallel_tool_calls=parallel,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
            logprobs=True if req.top_logprobs or _LOGPROBS_INCLUDE in (req.include or ()) else None,
            top_logprobs=req.top_logprobs,
            verbosity=verbosity,
            user=req.user,
        )
        body = new_response(
            response_id=new_id("resp"),
            created_at=now(),
            model=model.name,
            status="queued" if background else "in_progress",
            instructions="\n\n".join(instructions) or None,
            tools=tools,
            tool_choice=tool_choice,
            temperature=temperature,
            top_p=top_p,
            max_output_tokens=req.max_output_tokens,
            text=text,
            reasoning=reasoning,
            previous_response_id=req.previous_response_id,
            conversation_id=req.conversation_id,
            metadata=_with_warnings(req.metadata or {}, omitted),
            store=store,
            background=background,
            parallel_tool_calls=parallel,
            extra=req.model_dump(
                include={
                    "truncation",
                    "presence_penalty",
                    "frequency_penalty",
                    "top_logprobs",
                    "max_tool_calls",
                    "service_tier",
                    "safety_identifier",
                    "prompt_cache_key",
                    "user",
                }
            ),
        )
        if agent is not None:
            body["agent_reference"] = {
                "type": "agent_reference",
                "name": agent.name,
                "version": str(agent.version),
            }
        model.check(model_request)  # e.g. a strict reasoning deployment refusing temperature
        return Prepared(
            project=project,
            body=body,
            model=model,
            model_request=model_request,
            input_items=input_items,
            conversation_id=req.conversation_id,
            store=store,
            stream=bool(req.stream),
            background=background,
            server_tools=[t for t in tools if t["type"] not in ("function", "namespace")],
            approved=approved,
            history=history,
            namespaced=namespace_map(tools) if tools else {},
        )

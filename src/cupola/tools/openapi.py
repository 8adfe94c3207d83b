"""OpenAPI tools: every operation of a spec is a function the server calls over HTTP.

The tool entry is Foundry's (``OpenApiTool`` in ``azure-ai-projects``)::

    {"type": "openapi",
     "openapi": {"name": "weather", "description": "...", "spec": {...OpenAPI 3.x...},
                 "auth": {"type": "anonymous"}
                      | {"type": "project_connection",
                         "security_scheme": {"project_connection_id": "weather-key"}},
                 "default_params": ["api-version"]}}

Calls go only to hosts ``tools.allowed_hosts`` allows (checked before anything is sent),
carry the connection's credential headers, stop after ``tools.timeout_seconds`` and read at
most ``tools.max_response_bytes`` of the answer. Every call becomes an ``openapi_call``
item; failures (refused host, timeout, HTTP error) are items with ``error`` set. Credential
values are never written to an item, an error or a log: if the API echoes one back, it is
replaced by ``[redacted]``.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from cupola.domain.records import Item
from cupola.exceptions import CupolaError, ToolError, UserError
from cupola.ids import new_id
from cupola.models.base import FunctionSpec, ToolCall
from cupola.settings import ToolSettings
from cupola.tools.base import Rendered, SecretResolver, ToolContext, Toolset, valid_function_name
from cupola.tools.egress import EgressPolicy
from cupola.tools.openapi_spec import Operation, ParamBinding, parse_openapi_spec

__all__ = ["OpenApiToolset", "normalize_openapi_tool", "render_openapi_call"]

log = logging.getLogger(__name__)

CONNECTION_AUTH = ("project_connection",)
"""Auth types whose credential comes from a project connection (``security_scheme``)."""
ERROR_SNIPPET_CHARS = 500
REDACTED = "[redacted]"


def _auth(raw: Any, where: str) -> dict[str, Any]:
    at = f"{where}.auth"
    if not isinstance(raw, dict):
        raise UserError(
            f"{at} is required: {{'type': 'anonymous'}} or {{'type': 'project_connection', "
            "'security_scheme': {'project_connection_id': ...}}",
            param=at,
        )
    kind = raw.get("type")
    if kind == "anonymous":
        return {"type": "anonymous"}
    if kind in CONNECTION_AUTH:
        scheme = raw.get("security_scheme")
        conn = scheme.get("project_connection_id") if isinstance(scheme, dict) else None
        if not isinstance(conn, str) or not conn.strip():
            raise UserError(
                f"{at}.security_scheme.project_connection_id must name a project connection",
                param=f"{at}.security_scheme.project_connection_id",
            )
        return {"type": kind, "security_scheme": {"project_connection_id": conn}}
    if kind == "managed_identity":
        raise UserError(
            f"{at}.type 'managed_identity' needs an Azure managed identity, which this server "
            "does not have; store the API key in a project connection and use "
            "'project_connection'",
            param=f"{at}.type",
            code="unsupported_auth",
        )
    raise UserError(
        f"{at}.type must be 'anonymous' or 'project_connection' (found {kind!r})",
        param=f"{at}.type",
    )


def normalize_openapi_tool(
    raw: dict[str, Any], where: str, *, base_url: str | None = None
) -> dict[str, Any]:
    """Validate an ``openapi`` tool entry; return it in its echoed wire shape.

    The echo carries ``openapi.functions`` (the functions the spec gives, as Foundry returns
    them); a ``functions`` list in the input is ignored. ``base_url`` resolves a relative
    server URL. Raises :class:`UserError` (``param=where``) naming the spot of any problem."""
    return _normalize(raw, where, base_url)[0]


def _normalize(
    raw: dict[str, Any], where: str, base_url: str | None
) -> tuple[dict[str, Any], list[Operation]]:
    body = raw.get("openapi")
    at = f"{where}.openapi"
    if not isinstance(body, dict):
        raise UserError(f"{at} is required: {{'name', 'spec', 'auth'}}", param=at)
    name = body.get("name")
    if not isinstance(name, str) or not valid_function_name(name):
        raise UserError(f"{at}.name must be 1-64 letters, digits, '_' or '-'", param=f"{at}.name")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise UserError(f"{at}.description must be a string", param=f"{at}.description")
    defaults = body.get("default_params")
    if defaults is not None and (
        not isinstance(defaults, list) or not all(isinstance(d, str) for d in defaults)
    ):
        raise UserError(
            f"{at}.default_params must be a list of parameter names", param=f"{at}.default_params"
        )
    auth = _auth(body.get("auth"), at)
    operations = parse_openapi_spec(
        body.get("spec"),
        tool=name,
        where=f"{at}.spec",
        default_params=defaults or (),
        base_url=base_url,
    )
    echoed: dict[str, Any] = {"name": name}
    if description is not None:
        echoed["description"] = description
    echoed["spec"] = body["spec"]
    echoed["auth"] = auth
    if defaults is not None:
        echoed["default_params"] = defaults
    echoed["functions"] = [
        {"name": op.function, "description": op.description, "parameters": op.parameters}
        for op in operations
    ]
    tool: dict[str, Any] = {"type": "openapi", "openapi": echoed}
    if isinstance(raw.get("tool_configs"), dict):
        tool["tool_configs"] = raw["tool_configs"]
    return tool, operations


def render_openapi_call(item: Item) -> Rendered:
    """How a finished ``openapi_call`` item appears to the model in later turns."""
    call = ToolCall(
        call_id=str(item.get("id") or ""),
        name=str(item.get("name") or ""),
        arguments=str(item.get("arguments") or "{}"),
    )
    if item.get("status") == "completed":
        return Rendered(call, str(item.get("output") or ""))
    return Rendered(call, f"Error: {item.get('error') or 'the call failed'}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _simple(b: ParamBinding, value: Any) -> str:
    """``style: simple`` (path and header parameters), before URL-encoding."""
    if b.json_content:
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict):
        sep = "=" if b.explode else ","
        return ",".join(f"{k}{sep}{_text(v)}" for k, v in value.items())
    return _text(value)


def _query(b: ParamBinding, value: Any) -> list[tuple[str, str]]:
    if b.json_content:
        return [(b.name, orjson.dumps(value).decode())]
    if isinstance(value, list):
        if b.explode and b.style == "form":
            return [(b.name, _text(v)) for v in value]
        sep = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(b.style, ",")
        return [(b.name, sep.join(_text(v) for v in value))]
    if isinstance(value, dict):
        if b.style == "deepObject":
            return [(f"{b.name}[{k}]", _text(v)) for k, v in value.items()]
        if b.explode:
            return [(str(k), _text(v)) for k, v in value.items()]
        return [(b.name, ",".join(f"{k},{_text(v)}" for k, v in value.items()))]
    return [(b.name, _text(value))]


def _path_segment(text: str) -> str:
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="")


class _Request:
    """The HTTP request one call makes (before credentials are added)."""

    def __init__(self, op: Operation, args: dict[str, Any]) -> None:
        path = op.path
        self.query: list[tuple[str, str]] = []
        self.headers: dict[str, str] = {}
        cookies: list[str] = []
        for b in op.params:
            value = b.default if b.fixed else args.get(b.key)
            if value is None:
                continue
            if b.location == "path":
                path = path.replace(f"{{{b.name}}}", _path_segment(_simple(b, value)))
            elif b.location == "query":
                self.query += _query(b, value)
            elif b.location == "header":
                self.headers[b.name] = _header_value(b.name, _simple(b, value))
            else:
                cookies.append(f"{b.name}={quote(_simple(b, value), safe='')}")
        if cookies:
            self.headers["Cookie"] = "; ".join(cookies)
        self.url = op.server + path
        self.content: bytes | None = None
        body = op.body
        if body is None:
            return
        if body.key is not None:
            payload = args.get(body.key)
        else:
            present = {k: args[k] for k in body.properties if k in args}
            payload = present if present or body.required else None
        if payload is None:
            return
        self.headers["Content-Type"] = body.media_type
        if body.media_type == "application/json":
            self.content = orjson.dumps(payload)
        elif isinstance(payload, dict):
            self.content = urlencode([(k, _text(v)) for k, v in payload.items()]).encode()
        else:
            raise ToolError("a form-encoded body must be an object")


def _header_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ToolError(f"header parameter {name!r} may not contain line breaks")
    return value


class OpenApiToolset(Toolset):
    """The functions of one ``openapi`` tool entry, called over HTTP."""

    def __init__(
        self,
        tool: dict[str, Any],
        egress: EgressPolicy,
        secrets: SecretResolver | None,
        project: str,
        settings: ToolSettings,
        client: httpx.AsyncClient | None = None,
        *,
        base_url: str | None = None,
    ) -> None:
        """``tool`` is a tool entry (normalized or not: it is checked again here);
        ``client`` is shared and left open, otherwise the toolset owns one."""
        entry, operations = _normalize(tool, "tool", base_url)
        self.label: str = entry["openapi"]["name"]
        self.auth: dict[str, Any] = entry["openapi"]["auth"]
        self.egress = egress
        self.secrets = secrets
        self.project = project
        self.settings = settings
        self._ops = {op.function: op for op in operations}
        self._validators = {op.function: Draft202012Validator(op.parameters) for op in operations}
        self._client = client
        self._owns_client = client is None
        self._auth_headers: dict[str, str] | None = None

    def functions(self) -> list[FunctionSpec]:
        return [
            FunctionSpec(name=op.function, description=op.description, parameters=op.parameters)
            for op in self._ops.values()
        ]

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self.egress.transport(),  # connects only to checked addresses
                timeout=httpx.Timeout(self.settings.timeout_seconds),
                follow_redirects=False,
                trust_env=False,
                headers={"User-Agent": "cupola-openapi-tool"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run(self, call: ToolCall, ctx: ToolContext, **extra: Any) -> Item:
        op = self._ops.get(call.name)
        item: Item = {
            "id": new_id("oa"),
            "type": "openapi_call",
            "name": call.name,
            "operation_id": op.operation_id if op else None,
            "arguments": call.arguments,
            "status": "failed",
            "output": None,
            "error": None,
            "http_status": None,
        }
        try:
            if op is None:
                raise ToolError(f"OpenAPI tool {self.label!r} has no function {call.name!r}")
            request = self._request(op, call.arguments)
            self.egress.check(request.url, what=f"OpenAPI tool {self.label!r}")
            await self._send(op, request, item)
        except CupolaError as exc:  # httpx's and jsonschema's failures are turned into these
            item["error"] = self._redact(exc.message)
        if item["error"] is None:
            item["status"] = "completed"
        else:
            log.info("openapi call %s failed: %s", call.name, item["error"])
        return item

    def _request(self, op: Operation, raw: str) -> _Request:
        args = self._arguments(op, raw)
        try:
            return _Request(op, args)
        except orjson.JSONEncodeError as exc:  # a value nested deeper than orjson writes
            raise ToolError(f"the arguments cannot be encoded for {op.function}: {exc}") from None

    def _arguments(self, op: Operation, raw: str) -> dict[str, Any]:
        try:
            args = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise ToolError(f"the arguments are not valid JSON: {exc}") from None
        if not isinstance(args, dict):
            raise ToolError("the arguments must be a JSON object")
        try:
            first = best_match(self._validators[op.function].iter_errors(args))
        except Exception as exc:  # jsonschema on the spec's schema: a $ref it cannot resolve,
            # recursion ... (the arguments themselves are plain JSON)
            raise ToolError(
                f"cannot check the arguments against {op.function}'s parameters "
                f"({type(exc).__name__})"
            ) from None
        if first is not None:
            at = "/".join(str(p) for p in first.absolute_path)
            spot = f" (at {at})" if at else ""
            raise ToolError(
                f"the arguments do not match {op.function}'s parameters: {first.message}{spot}"
            )
        return args

    async def _credentials(self) -> dict[str, str]:
        if self._auth_headers is not None:
            return self._auth_headers
        headers: dict[str, str] = {}
        if self.auth["type"] in CONNECTION_AUTH:
            conn = self.auth["security_scheme"]["project_connection_id"]
            if self.secrets is None:
                raise ToolError(
                    f"OpenAPI tool {self.label!r} needs connection {conn!r}, but this server "
                    "has no connection store"
                )
            try:
                headers = dict(await self.secrets.headers_for(self.project, conn))
            except CupolaError as exc:
                raise ToolError(
                    f"OpenAPI tool {self.label!r} could not use connection {conn!r}: {exc.message}"
                ) from None
            except Exception as exc:  # a broken secret store: say so, show nothing of it
                raise ToolError(
                    f"OpenAPI tool {self.label!r} could not use connection {conn!r}: "
                    f"the secret store failed ({type(exc).__name__})"
                ) from None
        self._auth_headers = headers
        return headers

    def _secret_values(self) -> list[str]:
        values: set[str] = set()
        for value in (self._auth_headers or {}).values():
            values.add(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.isalpha():
                values.add(token)
        return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)

    def _redact(self, text: str) -> str:
        for secret in self._secret_values():
            text = text.replace(secret, REDACTED)
        return text

    async def _send(self, op: Operation, request: _Request, item: Item) -> None:
        credentials = await self._credentials()
        taken = {name.lower() for name in credentials}
        # The connection's headers win over header parameters of the same name.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in taken}
        headers.update(credentials)
        try:
            http_request = self.client.build_request(
                op.method,
                request.url,
                params=tuple(request.query),
                headers=headers,
                content=request.content,
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise ToolError(f"cannot build the request for {op.function}: {exc}") from None
        where = f"{op.method} {http_request.url.host}{op.path}"
        limit = self.settings.timeout_seconds
        try:
            async with asyncio.timeout(limit):
                response = await self.client.send(http_request, stream=True)
                try:
                    text, truncated = await self._read(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            raise ToolError(f"{where} timed out after {limit:g} s") from None
        except httpx.HTTPError as exc:
            raise ToolError(f"{where} failed: {type(exc).__name__}: {exc}") from None
        item["http_status"] = response.status_code
        text = self._redact(text)
        log.debug("openapi call %s -> HTTP %s", where, response.status_code)
        if not response.is_success:
            snippet = text[:ERROR_SNIPPET_CHARS].strip()
            if len(text) > ERROR_SNIPPET_CHARS or truncated:
                snippet += " ..."
            reason = f" {response.reason_phrase}" if response.reason_phrase else ""
            message = f"{where} returned HTTP {response.status_code}{reason}"
            if response.is_redirect:
                message += f" (a redirect to {response.headers.get('location')!r}; not followed)"
            raise ToolError(f"{message}: {snippet}" if snippet else message)
        if truncated:
            cap = self.settings.max_response_bytes
            text += f"\n[truncated: the response was larger than {cap} bytes]"
        item["output"] = text

    async def _read(self, response: httpx.Response) -> tuple[str, bool]:
        """The body as text, at most ``max_response_bytes`` of it; and whether it was cut."""
        cap = self.settings.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        truncated = False
        async for chunk in response.aiter_bytes():
            room = cap - size
            if len(chunk) > room:
                chunks.append(chunk[:room])
                truncated = True
                break
            chunks.append(chunk)
            size += len(chunk)
        try:
            decoder = codecs.getincrementaldecoder(response.charset_encoding or "utf-8")
        except LookupError:
            decoder = codecs.getincrementaldecoder("utf-8")
        # A cut body may end inside a character: leave those bytes out.
        return decoder(errors="replace").decode(b"".join(chunks), final=not truncated), truncated

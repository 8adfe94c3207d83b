"""OpenAPI 3.0/3.1 documents turned into callable functions.

Each operation with an ``operationId`` becomes one function named
``<tool name>_<operationId>``. Its path, query, header and cookie parameters and its JSON
(or form) request body become one JSON Schema object for the function's arguments:
parameters keep their names; the body's properties sit beside them when the body is a plain
object whose property names do not clash with a parameter, otherwise the whole body is the
``body`` argument. ``$ref`` to ``#/...`` is resolved (recursive schemas are cut at the
repetition); OpenAPI 3.0 schema dialect (``nullable``, boolean ``exclusiveMaximum``) is
translated to JSON Schema 2020-12. Every problem is a :class:`UserError` naming the spot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urljoin, urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from cupola.domain.limits import MAX_SCHEMA_DEPTH, check_depth, nesting_depth
from cupola.exceptions import UserError

Location = Literal["path", "query", "header", "cookie"]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_SCHEMA_NODES = 20_000
"""How many schema objects one spec may expand to once ``$ref`` is resolved."""
MAX_DESCRIPTION = 1024

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_TEMPLATE = re.compile(r"\{([^{}]+)\}")
_IGNORED_HEADERS = {"accept", "content-type", "authorization"}
"""Header parameters OpenAPI says to ignore (the client sets these itself)."""
_DROPPED_KEYWORDS = {"nullable", "discriminator", "xml", "externalDocs", "example"}
_SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
_SCHEMA_ONE = {
    "items",
    "additionalProperties",
    "not",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
}
_SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}


@dataclass(frozen=True, slots=True)
class ParamBinding:
    """Where one argument goes in the HTTP request."""

    key: str
    """The argument's name in the function's parameters."""
    name: str
    """The parameter's name on the wire."""
    location: Location
    style: str
    explode: bool
    json_content: bool = False
    """The parameter uses ``content: application/json``: its value is sent as JSON text."""
    fixed: bool = False
    """Listed in ``default_params``: hidden from the model, always sent as ``default``."""
    default: Any = None


@dataclass(frozen=True, slots=True)
class BodyBinding:
    """How the arguments make the request body."""

    media_type: str
    """``application/json`` (or a ``+json`` type) or ``application/x-www-form-urlencoded``."""
    key: str | None
    """The argument that holds the whole body, or None when its properties are arguments."""
    properties: tuple[str, ...] = ()
    """The body's properties when they are arguments themselves."""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """One callable operation of a spec."""

    function: str
    """``<tool name>_<operationId>``, sanitized to ``^[a-zA-Z0-9_-]{1,64}$``."""
    operation_id: str
    method: str
    """Upper case: ``GET``, ``POST`` ..."""
    path: str
    """The path template, e.g. ``/weather/{city}``."""
    server: str
    """The absolute base URL, without a trailing slash."""
    description: str
    parameters: dict[str, Any]
    """The JSON Schema object of the function's arguments."""
    params: tuple[ParamBinding, ...]
    body: BodyBinding | None


def function_name(tool: str, operation_id: str) -> str:
    """``<tool>_<operationId>`` with unsafe characters replaced by ``_``, at most 64 long."""
    return _UNSAFE.sub("_", f"{tool}_{operation_id}")[:64]


class _Resolver:
    """Resolves ``$ref`` in one spec and converts schemas, within a node budget."""

    def __init__(self, spec: dict[str, Any], where: str) -> None:
        self.spec = spec
        self.where = where
        self.nodes = 0

    def error(self, spot: str, message: str) -> UserError:
        return UserError(f"{self.where}.{spot}: {message}", param=self.where)

    def lookup(self, ref: Any, spot: str) -> Any:
        """The object a local ``$ref`` points to."""
        if not isinstance(ref, str):
            raise self.error(spot, "$ref must be a string")
        if not ref.startswith("#"):
            raise self.error(
                spot, f"$ref {ref!r} points outside the document; only '#/...' refs are supported"
            )
        node: Any = self.spec
        pointer = unquote(ref[1:])
        if pointer and not pointer.startswith("/"):
            raise self.error(spot, f"$ref {ref!r} is not a JSON pointer ('#/components/...')")
        for raw in pointer.split("/")[1:] if pointer else []:
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise self.error(spot, f"$ref {ref!r} does not resolve")
        return node

    def deref(self, obj: Any, spot: str) -> Any:
        """Follow ``$ref`` chains of a non-schema object (parameter, request body ...)."""
        seen: set[str] = set()
        while isinstance(obj, dict) and "$ref" in obj:
            ref = obj["$ref"]
            if ref in seen:
                raise self.error(spot, f"$ref {ref!r} refers to itself")
            seen.add(ref)
            obj = self.lookup(ref, spot)
        return obj

    def schema(self, node: Any, spot: str, stack: tuple[str, ...] = ()) -> Any:
        """A JSON Schema 2020-12 copy of ``node`` with every ``$ref`` expanded."""
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise self.error(spot, "a schema must be an object")
        self.nodes += 1
        if self.nodes > MAX_SCHEMA_NODES:
            raise self.error(
                spot,
                f"the spec's schemas expand to more than {MAX_SCHEMA_NODES} objects once $ref "
                "is resolved; simplify the spec",
            )
        out: dict[str, Any] = {}
        if "$ref" in node:
            ref = node["$ref"]
            target = self.lookup(ref, spot)
            if ref in stack:
                # A recursive schema: cut it here, keeping only the kind of value it is.
                cut: dict[str, Any] = {"description": f"(recursive: {ref})"}
                if isinstance(target, dict) and isinstance(target.get("type"), str | list):
                    cut["type"] = target["type"]
                out.update(cut)
            else:
                resolved = self.schema(target, f"{spot} -> {ref}", (*stack, ref))
                if isinstance(resolved, bool):
                    return resolved
                out.update(resolved)
        for key, value in node.items():
            if key == "$ref" or key in _DROPPED_KEYWORDS or key.startswith("x-"):
                continue
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {k: self.schema(v, f"{spot}.{key}.{k}", stack) for k, v in value.items()}
            elif key in _SCHEMA_ONE and isinstance(value, dict | bool):
                out[key] = self.schema(value, f"{spot}.{key}", stack)
            elif key in _SCHEMA_LISTS | {"items"} and isinstance(value, list):
                out[key] = [
                    self.schema(v, f"{spot}.{key}[{i}]", stack) for i, v in enumerate(value)
                ]
            else:
                out[key] = value
        _translate_openapi_30(node, out)
        return out


def _translate_openapi_30(node: dict[str, Any], out: dict[str, Any]) -> None:
    """OpenAPI 3.0's schema dialect in JSON Schema 2020-12 terms."""
    if node.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    for bound, limit in (("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")):
        flag = out.get(bound)
        if isinstance(flag, bool):
            del out[bound]
            if flag and limit in out:
                out[bound] = out.pop(limit)
    if "example" in node and "examples" not in out:
        out["examples"] = [node["example"]]


def _server_url(servers: Any, spot: str, base_url: str | None, r: _Resolver) -> str:
    """The absolute base URL of ``servers[0]`` (``spot`` is where that list is)."""
    at = f"{spot}.servers[0]" if spot else "servers[0]"
    url = "/"
    if isinstance(servers, list) and servers:
        first = servers[0]
        if not isinstance(first, dict) or not isinstance(first.get("url"), str):
            raise r.error(at, "a server needs a 'url' string")
        url = first["url"]
        variables = first.get("variables")
        for var in _TEMPLATE.findall(url):
            entry = variables.get(var) if isinstance(variables, dict) else None
            default = entry.get("default") if isinstance(entry, dict) else None
            if not isinstance(default, str):
                raise r.error(f"{at}.url", f"server variable {{{var}}} has no default value")
            url = url.replace(f"{{{var}}}", default)
    elif base_url is None:
        raise r.error(
            "servers",
            "the spec names no server; add servers: [{url: 'https://api.example.com/v1'}]",
        )
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        if parts.scheme not in ("http", "https"):
            raise r.error(f"{at}.url", f"{url!r} is not an http(s) URL")
        return url.rstrip("/")
    if base_url:
        return urljoin(base_url, url).rstrip("/")
    raise r.error(
        f"{at}.url",
        f"the server URL {url!r} is relative; give an absolute URL such as "
        "'https://api.example.com/v1'",
    )


def _description(op: dict[str, Any], method: str, path: str) -> str:
    parts = [p.strip() for p in (op.get("summary"), op.get("description")) if isinstance(p, str)]
    parts = [p for p in parts if p]
    if len(parts) == 2 and parts[1].startswith(parts[0]):
        parts = parts[1:]
    text = "\n\n".join(parts) or f"{method.upper()} {path}"
    return text[:MAX_DESCRIPTION]


def _with_description(schema: Any, description: Any) -> Any:
    if isinstance(schema, dict) and isinstance(description, str) and "description" not in schema:
        return {**schema, "description": description}
    return schema


class _OperationBuilder:
    """Builds the :class:`Operation` of one path + method."""

    def __init__(self, r: _Resolver, path: str, method: str, spot: str) -> None:
        self.r = r
        self.path = path
        self.method = method
        self.spot = spot
        self.properties: dict[str, Any] = {}
        self.required: list[str] = []
        self.params: list[ParamBinding] = []

    def parameters(self, raw: Iterable[tuple[str, Any]], defaults: set[str]) -> None:
        merged: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        for spot, entry in raw:
            param = self.r.deref(entry, spot)
            if not isinstance(param, dict):
                raise self.r.error(spot, "a parameter must be an object")
            name, where = param.get("name"), param.get("in")
            if not isinstance(name, str) or not name:
                raise self.r.error(spot, "a parameter needs a 'name'")
            if where not in ("path", "query", "header", "cookie"):
                raise self.r.error(spot, f"parameter {name!r} has 'in': {where!r}")
            merged[(name, where)] = (spot, param)  # operation-level entries override
        for spot, param in merged.values():
            self._parameter(spot, param, defaults)
        declared = {p.name for p in self.params if p.location == "path"}
        for var in _TEMPLATE.findall(self.path):
            if var not in declared:
                raise self.r.error(
                    self.spot, f"path template {{{var}}} has no matching 'in: path' parameter"
                )

    def _parameter(self, spot: str, param: dict[str, Any], defaults: set[str]) -> None:
        name: str = param["name"]
        location: Location = param["in"]
        if location == "header" and name.lower() in _IGNORED_HEADERS:
            return
        json_content = False
        if "schema" in param:
            schema = self.r.schema(param["schema"], f"{spot}.schema")
        elif isinstance(param.get("content"), dict) and param["content"]:
            media, media_obj = next(iter(param["content"].items()))
            media_obj = self.r.deref(media_obj, f"{spot}.content")
            raw_schema = media_obj.get("schema", {}) if isinstance(media_obj, dict) else {}
            schema = self.r.schema(raw_schema, f"{spot}.content.{media}.schema")
            json_content = "json" in str(media)
        else:
            schema = {"type": "string"}
        key = name if name not in self.properties else f"{location}_{name}"
        style = param.get("style") or ("form" if location in ("query", "cookie") else "simple")
        explode = param.get("explode", style == "form")
        if name in defaults:
            if not isinstance(schema, dict) or "default" not in schema:
                raise self.r.error(
                    spot, f"parameter {name!r} is in default_params but its schema has no default"
                )
            binding = ParamBinding(
                key, name, location, str(style), bool(explode), json_content,
                fixed=True, default=schema["default"],
            )  # fmt: skip
            self.params.append(binding)
            return
        binding = ParamBinding(key, name, location, str(style), bool(explode), json_content)
        self.params.append(binding)
        self.properties[key] = _with_description(schema, param.get("description"))
        if location == "path" or param.get("required") is True:
            self.required.append(key)

    def request_body(self, raw: Any) -> BodyBinding | None:
        spot = f"{self.spot}.requestBody"
        body = self.r.deref(raw, spot)
        if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
            raise self.r.error(spot, "a requestBody needs a 'content' object")
        content: dict[str, Any] = body["content"]
        media = next((m for m in content if _is_json(m)), None)
        media = media or next((m for m in content if m.startswith(_FORM)), None)
        required = body.get("required") is True
        if media is None:
            if required:
                raise self.r.error(
                    spot,
                    f"the request body is {', '.join(content) or 'empty'}; only JSON and "
                    "form-encoded bodies are supported",
                )
            return None
        media_obj = self.r.deref(content[media], f"{spot}.content")
        raw_schema = media_obj.get("schema", {}) if isinstance(media_obj, dict) else {}
        schema = self.r.schema(raw_schema, f"{spot}.content.{media}.schema")
        media_type = _FORM if media.startswith(_FORM) else "application/json"
        props = schema.get("properties") if isinstance(schema, dict) else None
        if (
            isinstance(schema, dict)
            and isinstance(props, dict)
            and props
            and schema.get("type", "object") == "object"
            and not any(k in schema for k in ("allOf", "anyOf", "oneOf", "not", "if"))
            and not set(props) & set(self.properties)
        ):
            names = tuple(k for k, v in props.items() if not _read_only(v))
            for prop in names:
                self.properties[prop] = props[prop]
            inner = schema.get("required")
            if isinstance(inner, list):
                self.required += [k for k in inner if k in names and k not in self.required]
            return BodyBinding(media_type, None, names, required)
        key = "body" if "body" not in self.properties else "request_body"
        self.properties[key] = _with_description(schema, body.get("description"))
        if required:
            self.required.append(key)
        return BodyBinding(media_type, key, (), required)

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object", "properties": self.properties}
        if self.required:
            out["required"] = self.required
        if nesting_depth(out, stop_after=MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:  # $refs inlined
            raise self.r.error(
                self.spot, f"the parameters nest more than {MAX_SCHEMA_DEPTH} levels deep"
            )
        try:
            Draft202012Validator.check_schema(out)
        except SchemaError as exc:
            raise self.r.error(
                self.spot, f"the parameters are not a valid JSON Schema: {exc.message}"
            ) from None
        return out


_FORM = "application/x-www-form-urlencoded"


def _is_json(media: str) -> bool:
    base = media.split(";")[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


def _read_only(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("readOnly") is True


def _check_version(spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise UserError(f"{where} must be an OpenAPI document (an object)", param=where)
    version = spec.get("openapi")
    if not isinstance(version, str) or not re.match(r"^3\.[01]\.", version):
        found = f"'swagger': {spec['swagger']!r}" if "swagger" in spec else f"{version!r}"
        raise UserError(
            f"{where}.openapi must be '3.0.x' or '3.1.x' (found {found}); convert Swagger 2.0 "
            "documents to OpenAPI 3",
            param=where,
        )
    return spec


def _operation(
    r: _Resolver,
    tool: str,
    path: str,
    method: str,
    item: dict[str, Any],
    defaults: set[str],
    base_url: str | None,
) -> Operation:
    item_spot = f"paths[{path!r}]"
    spot = f"{item_spot}.{method}"
    op = item[method]
    if not isinstance(op, dict):
        raise r.error(spot, "an operation must be an object")
    op_id = op.get("operationId")
    if not isinstance(op_id, str) or not op_id.strip():
        raise r.error(spot, "the operation has no operationId (each operation needs one)")
    if op.get("servers"):
        server = _server_url(op["servers"], spot, base_url, r)
    elif item.get("servers"):
        server = _server_url(item["servers"], item_spot, base_url, r)
    else:
        server = _server_url(r.spec.get("servers"), "", base_url, r)
    builder = _OperationBuilder(r, path, method, spot)
    raw_params = [
        (f"{item_spot}.parameters[{i}]", p) for i, p in enumerate(_list(item, "parameters"))
    ] + [(f"{spot}.parameters[{i}]", p) for i, p in enumerate(_list(op, "parameters"))]
    builder.parameters(raw_params, defaults)
    body = builder.request_body(op["requestBody"]) if "requestBody" in op else None
    return Operation(
        function=function_name(tool, op_id),
        operation_id=op_id,
        method=method.upper(),
        path=path,
        server=server,
        description=_description(op, method, path),
        parameters=builder.json_schema(),
        params=tuple(builder.params),
        body=body,
    )


def parse_openapi_spec(
    spec: Any,
    *,
    tool: str,
    where: str,
    default_params: Iterable[str] = (),
    base_url: str | None = None,
) -> list[Operation]:
    """The operations of an OpenAPI 3.0/3.1 document, as functions of the tool named ``tool``.

    ``where`` names the spec in error messages (``tools[0].openapi.spec``); ``base_url``
    resolves a relative ``servers[0].url`` (the URL the spec was fetched from)."""
    check_depth(spec, where, MAX_SCHEMA_DEPTH + 16)  # paths, methods, bodies, then schemas
    r = _Resolver(_check_version(spec, where), where)
    paths = r.spec.get("paths")
    if not isinstance(paths, dict):
        raise r.error("paths", "the spec has no 'paths' object")
    defaults = set(default_params)
    operations: list[Operation] = []
    seen: dict[str, tuple[str, str]] = {}
    for path, raw_item in paths.items():
        item_spot = f"paths[{path!r}]"
        if not isinstance(path, str) or not path.startswith("/"):
            raise r.error(item_spot, "a path must start with '/'")
        item = r.deref(raw_item, item_spot)
        if not isinstance(item, dict):
            raise r.error(item_spot, "a path item must be an object")
        for method in (m for m in METHODS if m in item):
            op = _operation(r, tool, path, method, item, defaults, base_url)
            spot = f"{item_spot}.{method}"
            for key in (f"operationId {op.operation_id!r}", f"function name {op.function!r}"):
                if key in seen:
                    raise r.error(spot, f"{key} is also used by {seen[key][0]}; rename one of them")
                seen[key] = (spot, op.function)
            operations.append(op)
    if not operations:
        raise r.error("paths", "the spec has no operations (nothing to call)")
    unknown = sorted(defaults - {p.name for op in operations for p in op.params if p.fixed})
    if unknown:
        raise UserError(
            f"{where}: default_params names {', '.join(map(repr, unknown))}, which no "
            "operation has as a parameter",
            param=where,
        )
    return operations


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    return value if isinstance(value, list) else []

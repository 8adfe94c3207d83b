"""Connections: named credentials tools reference by ``project_connection_id``.

A connection's secret is a small JSON object whose shape follows its credential type:
``ApiKey`` ``{"key"}``, ``BearerToken`` ``{"token"}``, ``CustomKeys`` ``{"keys": {header:
value}}``, ``None`` (no secret). The store keeps it encrypted; nothing here ever puts it in
a wire object or an error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cupola.exceptions import UserError

CREDENTIAL_TYPES = ("ApiKey", "BearerToken", "CustomKeys", "None")
"""The credential types cupola stores (Foundry's AAD, SAS and agentic identity are not)."""
HEADER_NAME_KEY = "header_name"
"""Metadata naming the header an ``ApiKey`` is sent in (default ``Authorization: Bearer``)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "expect",
        "proxy-authorization",
        "proxy-connection",
    }
)
_MAX_SECRET = 16 * 1024
_MAX_TARGET = 4096
_MAX_CUSTOM_KEYS = 32


@dataclass(frozen=True, slots=True)
class Connection:
    """A stored connection, without its secret."""

    name: str
    id: str
    type: str
    target: str
    credential_type: str
    metadata: dict[str, str]
    is_default: bool
    created_at: int
    updated_at: int


def check_connection_name(name: str) -> str:
    if not _NAME.match(name):
        raise UserError(
            "a connection name is 1-128 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit",
            param="name",
            code="invalid_name",
        )
    return name


def check_header_name(name: Any, param: str) -> str:
    """A header a credential may be sent in: an HTTP token, not one the transport owns."""
    if not isinstance(name, str) or not _HEADER.match(name):
        raise UserError(f"{param} must be an HTTP header name", param=param, code="invalid_value")
    if name.lower() in _RESERVED_HEADERS:
        raise UserError(
            f"{param}: the {name} header cannot carry a credential",
            param=param,
            code="invalid_value",
        )
    return name


def _secret_value(value: Any, param: str) -> str:
    """A secret string; the message never repeats the value."""
    if not isinstance(value, str) or not value:
        raise UserError(f"{param} must be a non-empty string", param=param, code="invalid_value")
    if len(value) > _MAX_SECRET:
        raise UserError(
            f"{param} is longer than {_MAX_SECRET} characters", param=param, code="invalid_value"
        )
    if any(ch in value for ch in "\r\n\0"):
        raise UserError(
            f"{param} must not contain line breaks or NUL characters",
            param=param,
            code="invalid_value",
        )
    return value


def _only(credentials: dict[str, Any], allowed: set[str], kind: str) -> None:
    for field in credentials:
        if field not in allowed:
            raise UserError(
                f"credentials of type {kind} take no field {field[:64]!r}",
                param=f"credentials.{field[:64]}",
                code="invalid_value",
            )


def check_credentials(credentials: Any) -> tuple[str, dict[str, Any] | None]:
    """The credential type and the secret object of a ``credentials`` body field."""
    if not isinstance(credentials, dict):
        raise UserError(
            "credentials must be an object with a type", param="credentials", code="invalid_value"
        )
    kind = credentials.get("type")
    if kind not in CREDENTIAL_TYPES:
        raise UserError(
            "credentials.type must be one of " + ", ".join(CREDENTIAL_TYPES),
            param="credentials.type",
            code="invalid_value",
        )
    if kind == "ApiKey":
        _only(credentials, {"type", "key"}, kind)
        return kind, {"key": _secret_value(credentials.get("key"), "credentials.key")}
    if kind == "BearerToken":
        _only(credentials, {"type", "token"}, kind)
        return kind, {"token": _secret_value(credentials.get("token"), "credentials.token")}
    if kind == "CustomKeys":
        _only(credentials, {"type", "keys"}, kind)
        return kind, {"keys": _check_keys(credentials.get("keys"))}
    _only(credentials, {"type"}, kind)
    return kind, None


def _check_keys(keys: Any) -> dict[str, str]:
    if not isinstance(keys, dict) or not keys:
        raise UserError(
            "credentials.keys must be an object of header names to values",
            param="credentials.keys",
            code="invalid_value",
        )
    if len(keys) > _MAX_CUSTOM_KEYS:
        raise UserError(
            f"credentials.keys holds at most {_MAX_CUSTOM_KEYS} headers",
            param="credentials.keys",
            code="invalid_value",
        )
    seen: set[str] = set()
    out: dict[str, str] = {}
    for name, value in keys.items():
        param = f"credentials.keys.{name[:64]}"
        check_header_name(name, param)
        if name.lower() in seen:
            raise UserError(f"{param} is given twice", param=param, code="invalid_value")
        seen.add(name.lower())
        out[name] = _secret_value(value, param)
    return out


def check_secret(credential_type: str, secret: dict[str, Any] | None) -> None:
    """That a secret object has the shape its credential type needs (the store's guard)."""
    if credential_type == "None":
        if secret:
            raise UserError("credentials of type None hold no secret", param="credentials")
        return
    check_credentials({"type": credential_type, **(secret or {})})


def check_connection(
    connection_type: str, target: str, metadata: dict[str, str], credential_type: str
) -> None:
    """Everything about a connection but its name and secret."""
    if not isinstance(connection_type, str) or not _TYPE.match(connection_type):
        raise UserError(
            "type must be a connection type such as ApiKey, CustomKeys or RemoteTool_Preview "
            "(letters, digits and '_', at most 64)",
            param="type",
            code="invalid_value",
        )
    if not isinstance(target, str) or not target.strip() or len(target) > _MAX_TARGET:
        raise UserError(
            f"target must be a non-empty string of at most {_MAX_TARGET} characters",
            param="target",
            code="invalid_value",
        )
    if credential_type not in CREDENTIAL_TYPES:
        raise UserError(
            "credentials.type must be one of " + ", ".join(CREDENTIAL_TYPES),
            param="credentials.type",
            code="invalid_value",
        )
    if len(metadata) > 32:
        raise UserError("metadata holds at most 32 keys", param="metadata", code="invalid_value")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UserError("metadata maps strings to strings", param="metadata")
        if not key or len(key) > 64 or len(value) > 512:
            raise UserError(
                "metadata keys are 1-64 characters and values at most 512",
                param=f"metadata.{key[:64]}",
                code="invalid_value",
            )
    if HEADER_NAME_KEY in metadata:
        check_header_name(metadata[HEADER_NAME_KEY], f"metadata.{HEADER_NAME_KEY}")


def credential_headers(
    credential_type: str, secret: dict[str, Any] | None, metadata: dict[str, str]
) -> dict[str, str]:
    """The HTTP headers that present a connection's credential."""
    if credential_type == "ApiKey" and secret:
        header = metadata.get(HEADER_NAME_KEY)
        if header and header.lower() != "authorization":
            return {header: secret["key"]}
        return {"Authorization": f"Bearer {secret['key']}"}
    if credential_type == "BearerToken" and secret:
        return {"Authorization": f"Bearer {secret['token']}"}
    if credential_type == "CustomKeys" and secret:
        return dict(secret["keys"])
    return {}

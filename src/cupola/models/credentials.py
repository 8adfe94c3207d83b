"""A deployment's credential: a key (``api_key`` or a project ``connection``) or Entra ID tokens.

Credentials are never literals in agent files: cupola.yaml names them (``api_key:
${AZURE_OPENAI_API_KEY}``, ``connection: my-aoai``, ``auth: entra``) and adapters ask a
:class:`CredentialSource` for the current value before each call:

- ``api_key``: the key, as written (after ``${VAR}`` expansion);
- ``connection``: the key of a project connection, read through the server's connection
  store (:class:`ConnectionKeys`) and re-read every minute, so a rotated key takes effect
  without a restart;
- ``auth: entra``: a Microsoft Entra ID token from azure-identity's ``DefaultAzureCredential``
  (or a credential object passed by the embedder), fetched in a worker thread (the sync
  credentials may run ``az`` or call the identity endpoint) and cached until five minutes
  before it expires.
"""

from __future__ import annotations

import abc
import asyncio
import importlib.util
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread

from cupola.exceptions import ConfigError, MissingDependency, NotFound, ProviderError
from cupola.settings import DeploymentConfig

if TYPE_CHECKING:
    from cupola.secrets import SecretResolver

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
"""The Entra ID scope of Azure OpenAI / Foundry model deployments."""
AI_SCOPE = "https://ai.azure.com/.default"
"""The Entra ID scope of Foundry projects and of Claude models on Foundry."""
REFRESH_MARGIN = 300.0
"""Seconds before expiry a cached token is renewed."""
KEY_TTL = 60.0
"""Seconds a key read from a connection is reused before it is read again."""
_KEY_HEADERS = ("api-key", "x-api-key")


class AccessTokenLike(Protocol):
    """What ``get_token`` returns (``azure.core.credentials.AccessToken``)."""

    @property
    def token(self) -> str: ...

    @property
    def expires_on(self) -> int: ...


class TokenCredential(Protocol):
    """A synchronous azure-identity credential (``DefaultAzureCredential``, or any
    ``azure.core.credentials.TokenCredential``)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessTokenLike: ...


@dataclass(frozen=True, slots=True)
class Secret:
    """The credential of one call."""

    value: str
    bearer: bool
    """True for an Entra ID token (sent as ``Authorization: Bearer``); False for a key (sent
    in the provider's key header)."""
    expires_on: float
    """Unix time after which it must not be used."""


class CredentialSource(abc.ABC):
    """Where a deployment's credential comes from."""

    bearer: bool = False

    @abc.abstractmethod
    async def get(self) -> Secret:
        """The credential to send now; raises :class:`ProviderError` when there is none."""


class FixedKey(CredentialSource):
    """``api_key`` from cupola.yaml."""

    def __init__(self, key: str) -> None:
        self._key = key

    async def get(self) -> Secret:
        return Secret(self._key, bearer=False, expires_on=time.time() + 365 * 86400)


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The key a connection's credential headers carry: ``Authorization: Bearer KEY``, a
    single custom header, or the ``api-key`` / ``x-api-key`` of several."""
    lowered = {k.lower(): v for k, v in headers.items()}
    auth = lowered.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    if len(lowered) == 1:
        return next(iter(lowered.values())) or None
    for name in _KEY_HEADERS:
        if lowered.get(name):
            return lowered[name]
    return None


class ConnectionKeys:
    """Keys of project connections, read through the server's :class:`SecretResolver`
    (``cupola.store.connections.ConnectionSecrets``) in the server's project."""

    def __init__(self, resolver: SecretResolver, project: str) -> None:
        self.resolver = resolver
        self.project = project

    async def key(self, connection: str, where: str) -> str:
        try:
            headers = await self.resolver.headers_for(self.project, connection)
        except NotFound:
            raise ProviderError(
                f"{where}: connection {connection!r} does not exist in project "
                f"{self.project!r}; create it with `cupola connections create`",
                code="missing_credentials",
            ) from None
        key = key_from_headers(headers)
        if not key:
            raise ProviderError(
                f"{where}: connection {connection!r} has no API key (give it ApiKey "
                "credentials, or CustomKeys with a single key)",
                code="missing_credentials",
            )
        return key


class ConnectionKey(CredentialSource):
    """The key of a project connection, re-read every :data:`KEY_TTL` seconds."""

    def __init__(self, keys: ConnectionKeys, connection: str, where: str) -> None:
        self._keys = keys
        self._connection = connection
        self._where = where
        self._cached: Secret | None = None

    async def get(self) -> Secret:
        cached = self._cached
        if cached is not None and cached.expires_on > time.time():
            return cached
        key = await self._keys.key(self._connection, self._where)
        self._cached = Secret(key, bearer=False, expires_on=time.time() + KEY_TTL)
        return self._cached


def default_entra_credential() -> TokenCredential:
    """azure-identity's ``DefaultAzureCredential`` (environment, workload or managed identity,
    Azure CLI, ...)."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise MissingDependency("azure-identity", "azure") from None
    return DefaultAzureCredential()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


class EntraTokens(CredentialSource):
    """Microsoft Entra ID tokens for one scope, cached until shortly before they expire."""

    bearer = True

    def __init__(self, credential: TokenCredential | None, scope: str, where: str) -> None:
        self._credential = credential
        self._scope = scope
        self._where = where
        self._cached: Secret | None = None
        self._lock: asyncio.Lock | None = None

    def _fresh(self) -> Secret | None:
        cached = self._cached
        if cached is not None and cached.expires_on - REFRESH_MARGIN > time.time():
            return cached
        return None

    async def get(self) -> Secret:
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one fetch at a time; the others reuse its token
            fresh = self._fresh()
            if fresh is not None:
                return fresh
            token = await anyio.to_thread.run_sync(self._fetch)
            self._cached = Secret(token.token, bearer=True, expires_on=float(token.expires_on))
            return self._cached

    def _fetch(self) -> AccessTokenLike:
        if self._credential is None:
            self._credential = default_entra_credential()
        try:
            return self._credential.get_token(self._scope)
        except Exception as exc:  # azure-identity raises ClientAuthenticationError and kin
            raise ProviderError(
                f"{self._where}: Microsoft Entra ID sign-in failed ({_first_line(exc)}); "
                "sign in with `az login`, set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                "AZURE_CLIENT_SECRET, or run with a managed identity",
                code="missing_credentials",
                upstream_status=401,  # an authentication failure: retrying will not help
            ) from None


def credential_source(
    config: DeploymentConfig,
    *,
    scope: str,
    keys: ConnectionKeys | None = None,
    credential: TokenCredential | None = None,
    required: bool = True,
) -> CredentialSource | None:
    """The credential source a deployment's config names. ``credential`` replaces
    ``DefaultAzureCredential`` for ``auth: entra`` (embedders, tests). Raises
    :class:`ConfigError` when nothing usable is configured (None if not ``required``)."""
    where = f"deployment {config.name!r}"
    if config.auth == "entra":
        if credential is None and importlib.util.find_spec("azure.identity") is None:
            raise MissingDependency("azure-identity", "azure")
        return EntraTokens(credential, scope, where)
    if config.api_key is not None and config.api_key.get_secret_value():
        return FixedKey(config.api_key.get_secret_value())
    if config.connection:
        if keys is None:
            raise ConfigError(
                f"{where}: connection {config.connection!r} can only be read by the server "
                "(cupola serve); set api_key: ${ENV_VAR} or auth: entra instead"
            )
        return ConnectionKey(keys, config.connection, where)
    if not required:
        return None
    raise ConfigError(
        f"{where} ({config.provider}) has no credential: set api_key: ${{ENV_VAR}}, "
        "connection: <project connection> or auth: entra"
    )

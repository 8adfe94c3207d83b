"""The ``azure_openai`` adapter: Azure OpenAI and Foundry model deployments.

The wire format is Chat Completions, so this is the ``openai`` adapter (same request body,
same stream parsing, including Azure's content-filter chunks with empty ``choices``) with
Azure's addressing and authentication:

- with ``api_version``: ``POST {endpoint}/openai/deployments/{deployment}/chat/completions
  ?api-version={api_version}``;
- without it, the v1 API: ``POST {endpoint}/openai/v1/chat/completions`` with
  ``model: {deployment}``;
- ``api-key: KEY`` (from ``api_key`` or a project ``connection``), or with ``auth: entra``
  ``Authorization: Bearer TOKEN`` for the ``https://cognitiveservices.azure.com/.default``
  scope, from azure-identity's ``DefaultAzureCredential``.

``deployment`` defaults to ``model``, then to the cupola deployment's ``name``.
"""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

from cupola.exceptions import ConfigError
from cupola.models.credentials import (
    COGNITIVE_SERVICES_SCOPE,
    ConnectionKeys,
    TokenCredential,
    credential_source,
)
from cupola.models.openai import OpenAIChatModel
from cupola.settings import DeploymentConfig

_API_SUFFIXES = ("/openai/v1", "/openai")


def resource_endpoint(config: DeploymentConfig) -> str:
    """The resource root (``https://RES.openai.azure.com``), without a trailing ``/openai``."""
    endpoint = (config.endpoint or "").strip().rstrip("/")
    if not endpoint:
        raise ConfigError(
            f"deployment {config.name!r} (azure_openai) needs endpoint: "
            "https://<resource>.openai.azure.com (or https://<resource>.services.ai.azure.com)"
        )
    for suffix in _API_SUFFIXES:
        if endpoint.endswith(suffix):
            endpoint = endpoint[: -len(suffix)]
            break
    return endpoint


class AzureOpenAIChatModel(OpenAIChatModel):
    """A deployment served by Azure OpenAI (or a Foundry resource's OpenAI endpoint)."""

    def __init__(
        self,
        config: DeploymentConfig,
        *,
        keys: ConnectionKeys | None = None,
        credential: TokenCredential | None = None,
        session: aiohttp.ClientSession | None = None,
    ):
        """``keys`` reads ``connection`` credentials (the server passes its connection store);
        ``credential`` replaces ``DefaultAzureCredential`` for ``auth: entra``."""
        endpoint = resource_endpoint(config)
        deployment = config.deployment or config.model or config.name
        if config.api_version:
            base_url = f"{endpoint}/openai/deployments/{quote(deployment, safe='')}"
        else:
            base_url = f"{endpoint}/openai/v1"
        upstream = config.model_copy(
            update={"base_url": base_url, "api_key": None, "model": deployment}
        )
        source = credential_source(
            config, scope=COGNITIVE_SERVICES_SCOPE, keys=keys, credential=credential
        )
        query = {"api-version": config.api_version} if config.api_version else None
        super().__init__(
            upstream, credential=source, key_header="api-key", session=session, query=query
        )

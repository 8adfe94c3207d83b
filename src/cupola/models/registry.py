"""Deployment names resolve to models here, and only here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cupola.exceptions import ConfigError, MissingDependency, NotFound
from cupola.models.base import Model
from cupola.models.compat import CompatModel
from cupola.models.credentials import (
    COGNITIVE_SERVICES_SCOPE,
    ConnectionKeys,
    credential_source,
)
from cupola.models.resilience import CircuitBreaker, ResilientModel, Target
from cupola.models.router import RouterModel
from cupola.models.testing import ScriptedCall, ScriptedModel, ScriptedStep
from cupola.settings import DeploymentConfig, Settings

if TYPE_CHECKING:
    from cupola.secrets import SecretResolver


def build_model(config: DeploymentConfig, *, secrets: ConnectionKeys | None = None) -> Model:
    """The adapter for one deployment (clients are created lazily by the adapter).
    ``secrets`` reads the keys of project connections named by ``connection:``."""
    if config.provider == "scripted":
        steps = [
            ScriptedStep(
                match=s.match,
                reply=s.reply,
                tool_calls=tuple(
                    ScriptedCall(name=c["name"], arguments=c.get("arguments", {}))
                    for c in s.tool_calls
                ),
            )
            for s in config.script
        ]
        return ScriptedModel(config.name, mode=config.mode, script=steps)
    if config.provider == "openai":
        from cupola.models.openai import OpenAIChatModel

        if config.connection and config.api_key is None:  # the key of a project connection
            source = credential_source(config, scope=COGNITIVE_SERVICES_SCOPE, keys=secrets)
            return OpenAIChatModel(config, credential=source)
        return OpenAIChatModel(config)
    if config.provider == "azure_openai":
        from cupola.models.azure_openai import AzureOpenAIChatModel

        return AzureOpenAIChatModel(config, keys=secrets)
    if config.provider == "anthropic":
        from cupola.models.anthropic import AnthropicModel

        return AnthropicModel(config, keys=secrets)
    if config.provider == "foundry_agent":
        try:
            from cupola.models.foundry_agent import FoundryAgentModel
        except ImportError:
            raise MissingDependency("azure-ai-projects", "azure") from None
        return FoundryAgentModel(config, keys=secrets)
    from cupola.models.embedded import EmbeddedModel

    return EmbeddedModel(config)


class ModelRegistry:
    """Models by deployment name, built on first use and kept for the process."""

    def __init__(self, settings: Settings, *, secrets: SecretResolver | None = None) -> None:
        """``secrets`` (the server's ``ConnectionSecrets``) reads deployment credentials
        kept in project connections."""
        self._secrets = ConnectionKeys(secrets, settings.project) if secrets is not None else None
        self._configs = {d.name: d for d in settings.deployments}
        self._models: dict[str, Model] = {}
        self._bases: dict[str, Model] = {}
        """Per deployment, its model without resilience (see :meth:`get`)."""
        self._breakers: dict[str, CircuitBreaker] = {}

    @property
    def deployments(self) -> list[DeploymentConfig]:
        return list(self._configs.values())

    def config(self, name: str) -> DeploymentConfig:
        try:
            return self._configs[name]
        except KeyError:
            raise NotFound(
                f"deployment {name!r} not found", param="model", code="model_not_found"
            ) from None

    def build_all(self) -> None:
        """Build every deployment's model now (clients still connect lazily), so a
        misconfigured deployment stops the server at start-up, naming it, rather than
        failing its first request."""
        for name in self._configs:
            self.get(name)

    def get(self, name: str) -> Model:
        """The deployment's model, wrapped: ``resilience(compat(adapter))``, or for a router
        the router itself (each route has its own chain), wrapped in resilience only when the
        router declares fallbacks. A fallback is served by its own ``compat(adapter)`` with
        its own retries, timeout and circuit breaker."""
        model = self._models.get(name)
        if model is None:
            config = self.config(name)
            self._check_loops(name)
            if config.provider == "router" and not config.fallbacks:
                model = self._base(name)
            else:
                model = ResilientModel(
                    name,
                    self._target(name),
                    config.fallbacks,
                    resolve=self._target,
                    owns_models=False,
                )
            self._models[name] = model
        return model

    def _base(self, name: str) -> Model:
        """The deployment without resilience: ``compat(adapter)``, or the router."""
        model = self._bases.get(name)
        if model is None:
            config = self.config(name)
            if config.provider == "router":
                assert config.router is not None  # settings require it
                routes = config.router.routes
                timeouts = {r.deployment: self.config(r.deployment).timeout for r in routes}
                model = RouterModel(name, config.router, self.get, failure_seconds=timeouts)
            else:
                model = CompatModel.for_deployment(
                    build_model(config, secrets=self._secrets), config
                )
            self._bases[name] = model
        return model

    def _target(self, name: str) -> Target:
        """How resilience sends to deployment ``name`` (a router's routes retry, not it)."""
        config = self.config(name)
        breaker = self._breakers.get(name)
        if breaker is None and config.circuit_breaker is not None:
            cb = config.circuit_breaker
            breaker = self._breakers[name] = CircuitBreaker(name, cb.failures, cb.reset_seconds)
        return Target(
            name,
            self._base(name),
            retries=0 if config.provider == "router" else config.retries,
            backoff=config.retry_backoff,
            max_retry_wait=config.max_retry_wait,
            timeout=config.timeout,
            breaker=breaker,
        )

    def _check_loops(self, name: str) -> None:
        """Refuse a deployment whose chain would call itself at run time: a router whose
        route leads back to it through fallbacks (fallbacks of fallbacks are never used)."""
        Node = tuple[str, bool]  # (deployment, whole chain with fallbacks / base only)

        def uses(node: Node) -> list[Node]:
            dep, whole = node
            config = self.config(dep)
            if whole:
                return [(dep, False), *((f, False) for f in config.fallbacks)]
            if config.provider == "router" and config.router is not None:
                return [(r.deployment, True) for r in config.router.routes]
            return []

        done: set[Node] = set()

        def visit(node: Node, path: list[Node]) -> None:
            if node in path:
                names = [n[0] for n in [*path[path.index(node) :], node]]
                chain = " -> ".join(n for i, n in enumerate(names) if i == 0 or n != names[i - 1])
                raise ConfigError(f"deployment {name!r} is part of a loop: {chain}")
            if node not in done:
                for nxt in uses(node):
                    visit(nxt, [*path, node])
                done.add(node)

        visit((name, True), [])

    def register(self, model: Model) -> None:
        """Serve ``model`` under its name (tests and embedders use this)."""
        self._models[model.name] = model

    async def aclose(self) -> None:
        closed: set[int] = set()
        for model in [*self._models.values(), *self._bases.values()]:
            if id(model) not in closed:  # a base may also be served directly
                closed.add(id(model))
                await model.aclose()
        self._models.clear()
        self._bases.clear()

"""Deployment names resolve to models here, and only here."""

from __future__ import annotations

from cupola.exceptions import NotFound
from cupola.models.base import Model
from cupola.models.testing import ScriptedCall, ScriptedModel, ScriptedStep
from cupola.settings import DeploymentConfig, Settings


def build_model(config: DeploymentConfig) -> Model:
    """The adapter for one deployment (clients are created lazily by the adapter)."""
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

        return OpenAIChatModel(config)
    from cupola.models.embedded import EmbeddedModel

    return EmbeddedModel(config)


class ModelRegistry:
    """Models by deployment name, built on first use and kept for the process."""

    def __init__(self, settings: Settings) -> None:
        self._configs = {d.name: d for d in settings.deployments}
        self._models: dict[str, Model] = {}

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

    def get(self, name: str) -> Model:
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = build_model(self.config(name))
        return model

    def register(self, model: Model) -> None:
        """Serve ``model`` under its name (tests and embedders use this)."""
        self._models[model.name] = model

    async def aclose(self) -> None:
        for model in self._models.values():
            await model.aclose()
        self._models.clear()

"""The HTTP server: Foundry and OpenAI wire protocols over Starlette."""

from cupola.server.app import create_app

__all__ = ["create_app"]

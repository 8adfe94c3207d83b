"""Routes for toolboxes (filled in by its owner)."""

from __future__ import annotations

from starlette.routing import Route

from cupola.server.services import Services


def routes(s: Services) -> list[Route]:
    return []

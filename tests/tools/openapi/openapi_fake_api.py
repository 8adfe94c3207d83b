"""A small weather-and-bookings HTTP API on loopback, for OpenAPI tool tests.

A Starlette app served by uvicorn in a background thread on ``127.0.0.1`` (ephemeral port),
like ``tests/models/fake_chat_upstream.py``. Every request is recorded. :func:`weather_spec`
is the OpenAPI 3.1 document describing it. Use the ``fake_api`` fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from loopback import serve_app

API_KEY = "sk-test-4f9a1c0d2e7b"
"""The key ``/me`` accepts as ``Authorization: Bearer <key>``."""
HUGE_BYTES = 3 * 1024 * 1024
SLOW_SECONDS = 5.0


@dataclass(frozen=True)
class Received:
    """One request the fake API received."""

    method: str
    path: str
    raw_path: str
    """The path exactly as sent (percent-encoding kept)."""
    query: list[tuple[str, str]]
    headers: dict[str, str]
    """Lower-cased header names."""
    body: bytes
    raw_headers: list[tuple[str, str]]
    """Every header as sent, repeated ones included."""


class FakeApi:
    """The fake API's state: its base URL and the requests it received."""

    def __init__(self) -> None:
        self.base_url = ""
        self.requests: list[Received] = []
        self.app = Starlette(
            routes=[
                Route("/weather/{city:path}", self._weather, methods=["GET"]),
                Route("/bookings", self._bookings, methods=["POST"]),
                Route("/me", self._me, methods=["GET"]),
                Route("/headers", self._headers, methods=["GET"]),
                Route("/slow", self._slow, methods=["GET"]),
                Route("/huge", self._huge, methods=["GET"]),
                Route("/broken", self._broken, methods=["GET"]),
                Route("/moved", self._moved, methods=["GET"]),
                Route("/echo/{rest:path}", self._echo, methods=["GET", "POST"]),
            ]
        )

    def paths(self, path: str) -> list[Received]:
        """The requests received for ``path`` (as decoded), oldest first."""
        return [r for r in self.requests if r.path == path]

    async def _record(self, request: Request) -> Received:
        received = Received(
            method=request.method,
            path=request.url.path,
            raw_path=request.scope.get("raw_path", b"").decode("latin-1"),
            query=list(request.query_params.multi_items()),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
            raw_headers=[(k.lower(), v) for k, v in request.headers.items()],
        )
        self.requests.append(received)
        return received

    async def _weather(self, request: Request) -> Response:
        await self._record(request)
        city = request.path_params["city"]
        units = request.query_params.get("units", "metric")
        temp = 21 if units == "metric" else 70
        return JSONResponse({"city": city, "units": units, "temperature": temp})

    async def _bookings(self, request: Request) -> Response:
        received = await self._record(request)
        body = orjson.loads(received.body)
        return JSONResponse({"id": "bk_1", "status": "confirmed", **body}, status_code=201)

    async def _me(self, request: Request) -> Response:
        await self._record(request)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": "a valid API key is required"}, status_code=401)
        return JSONResponse({"user": "ada", "plan": "pro"})

    async def _headers(self, request: Request) -> Response:
        received = await self._record(request)
        return JSONResponse(received.headers)

    async def _slow(self, request: Request) -> Response:
        await self._record(request)
        await anyio.sleep(SLOW_SECONDS)
        return JSONResponse({"finally": True})

    async def _huge(self, request: Request) -> Response:
        await self._record(request)

        async def body() -> AsyncIterator[bytes]:
            block = b"x" * 65536
            for _ in range(HUGE_BYTES // len(block)):
                yield block

        return StreamingResponse(body(), media_type="text/plain; charset=utf-8")

    async def _broken(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("the weather database is on fire", status_code=500)

    async def _moved(self, request: Request) -> Response:
        await self._record(request)
        return Response(status_code=302, headers={"location": "https://evil.example.net/x"})

    async def _echo(self, request: Request) -> Response:
        received = await self._record(request)
        return JSONResponse(
            {
                "method": received.method,
                "raw_path": received.raw_path,
                "query": received.query,
                "body": received.body.decode(),
                "content_type": received.headers.get("content-type"),
                "cookie": received.headers.get("cookie"),
                "x_trace": received.headers.get("x-trace"),
            }
        )


def weather_spec(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of :class:`FakeApi` served at ``base_url``."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Weather", "version": "1.0"},
        "servers": [{"url": base_url}],
        "paths": {
            "/weather/{city}": {
                "get": {
                    "operationId": "getWeather",
                    "summary": "Current weather for a city",
                    "parameters": [
                        {
                            "name": "city",
                            "in": "path",
                            "required": True,
                            "description": "The city name",
                            "schema": {"type": "string"},
                        },
                        {"$ref": "#/components/parameters/Units"},
                    ],
                }
            },
            "/bookings": {
                "post": {
                    "operationId": "createBooking",
                    "description": "Book a hotel room",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Booking"}}
                        },
                    },
                }
            },
            "/me": {"get": {"operationId": "whoAmI", "summary": "The caller's profile"}},
            "/headers": {"get": {"operationId": "echoHeaders"}},
            "/slow": {"get": {"operationId": "slow"}},
            "/huge": {"get": {"operationId": "huge"}},
            "/broken": {"get": {"operationId": "broken"}},
            "/moved": {"get": {"operationId": "moved"}},
        },
        "components": {
            "parameters": {
                "Units": {
                    "name": "units",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["metric", "imperial"]},
                }
            },
            "schemas": {
                "Booking": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "readOnly": True},
                        "hotel": {"type": "string"},
                        "nights": {"type": "integer", "minimum": 1},
                        "guest": {"$ref": "#/components/schemas/Guest"},
                    },
                    "required": ["hotel", "nights"],
                },
                "Guest": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
                },
            },
        },
    }


@contextmanager
def serve_fake_api() -> Iterator[FakeApi]:
    """Run a :class:`FakeApi` on an ephemeral loopback port while in the block."""
    api = FakeApi()
    with serve_app(api.app, "fake-openapi-api") as port:
        api.base_url = f"http://127.0.0.1:{port}"
        yield api


@pytest.fixture(scope="session")
def fake_api() -> Iterator[FakeApi]:
    """The fake API, shared by the session."""
    with serve_fake_api() as api:
        yield api

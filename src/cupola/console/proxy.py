"""The playground's way to the Responses API: ``POST /console/api/responses`` is handed,
streamed, to the API's own ``POST .../openai/v1/responses`` with the signed-in key, after the
console's same-origin check. Only this one call is forwarded: the pages read everything else
on the server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cupola.console.api import Caller, Receive, Scope, Send, api_scope
from cupola.console.security import cookie_key, same_origin

if TYPE_CHECKING:
    from cupola.console.app import Console


class ResponsesProxy:
    """An ASGI endpoint: checks, then the API's create-response route with the key."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        refusal = self._refusal(request)
        if refusal is not None:
            status, message, code = refusal
            error = {"message": message, "type": "invalid_request_error", "param": None}
            error["code"] = code
            await JSONResponse({"error": error}, status_code=status)(scope, receive, send)
            return
        key = cookie_key(request) if self.console.config.keys_required else None
        api = self.console.api
        forwarded = api_scope(
            Caller(scope, key),
            "POST",
            api.path("openai", "v1", "responses"),
            body_type=b"application/json",
        )
        await api.app(forwarded, receive, send)  # the body and the stream pass straight through

    def _refusal(self, request: Request) -> tuple[int, str, str] | None:
        if not same_origin(request):
            return 403, "this request did not come from the console's pages", "cross_site"
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            return 415, "send the request body as application/json", "unsupported_media_type"
        if self.console.config.keys_required and cookie_key(request) is None:
            return 401, "sign in to the console first", "invalid_api_key"
        return None


def routes(console: Console, prefix: str) -> list[Route]:
    return [Route(prefix + "/api/responses", ResponsesProxy(console), methods=["POST"])]

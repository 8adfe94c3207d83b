"""The console's ASGI app and how the server mounts it (``with_console``).

The console sits beside the API, not inside its middleware: a browser sends no
``Authorization`` header, so the console reads the signed-in key from its cookie, checks
that writes come from its own origin (:mod:`cupola.console.security`), and then calls the API
in-process with that key (:mod:`cupola.console.api`). The API's key, role and host checks
therefore apply to every page and every playground turn exactly as they apply to the SDKs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from cupola.console import pages, proxy, traces
from cupola.console.api import Api, ApiError, ASGIApp, Caller, Receive, Scope, Send
from cupola.console.security import (
    HEADERS,
    MAX_KEY_LENGTH,
    clear_key_cookie,
    cookie_key,
    safe_next,
    same_origin,
    set_key_cookie,
)

CONSOLE_PREFIX = "/console"

Handler = Callable[[Request, Caller], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """What the console needs to know of the server."""

    project: str
    """The project the console shows (the server's project)."""
    keys_required: bool
    """Whether requests need an API key; then the console asks for one at sign-in."""


class Console:
    """Renders pages; ``render`` and ``guard`` are what page modules use."""

    def __init__(self, api_app: ASGIApp, config: ConsoleConfig) -> None:
        self.api = Api(api_app, config.project)
        self.config = config
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("cupola.console", "templates"),
            autoescape=True,
            undefined=jinja2.ChainableUndefined,  # an optional field left out renders empty
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(
            prefix=CONSOLE_PREFIX, project=config.project, keys_required=config.keys_required
        )
        self.templates.filters["pretty"] = pages.pretty_json
        self.templates.filters["when"] = pages.when

    def render(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        html = self.templates.get_template(template).render(
            path=request.url.path, page=template.removesuffix(".html"), **values
        )
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def guard(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A page that needs the signed-in key (when the server needs keys) and shows the
        API's refusals (403, 404 ...) as a page; a key the API no longer accepts signs out."""

        async def page(request: Request) -> Response:
            key = cookie_key(request) if self.config.keys_required else None
            if self.config.keys_required and key is None:
                return self._to_login(request)
            try:
                return await handler(request, Caller(request.scope, key))
            except ApiError as error:
                if error.status == 401 and self.config.keys_required:
                    response = self._to_login(request, "expired")
                    clear_key_cookie(response, request)
                    return response
                return self.render(
                    request, "error.html", status=error.status, error=error, title="Error"
                )

        return page

    def _to_login(self, request: Request, why: str = "") -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        tail = f"&why={why}" if why else ""
        return RedirectResponse(
            f"{CONSOLE_PREFIX}/login?next={quote(target, safe='')}{tail}", status_code=303
        )

    async def login_form(self, request: Request) -> Response:
        if not self.config.keys_required:
            return RedirectResponse(CONSOLE_PREFIX + "/", status_code=303)
        why = request.query_params.get("why")
        message = "Your key is no longer accepted: sign in again." if why == "expired" else None
        return self.render(
            request,
            "login.html",
            title="Sign in",
            next=safe_next(request.query_params.get("next")),
            message=message,
        )

    async def login(self, request: Request) -> Response:
        """Check the key against the API (a read the reader role may do) before keeping it."""
        if not same_origin(request):
            return self.render(request, "error.html", 403, error=_CROSS_SITE, title="Error")
        if not self.config.keys_required:
            return RedirectResponse(CONSOLE_PREFIX + "/", status_code=303)
        form = await request.form()
        key = str(form.get("key", "")).strip()
        target = safe_next(str(form.get("next", "")))
        message = None
        if not key or len(key) > MAX_KEY_LENGTH:
            message = "Enter an API key."
        else:
            try:
                await self.api.get(Caller(request.scope, key), self.api.path("agents"), limit=1)
            except ApiError as error:
                message = error.message
        if message is not None:
            return self.render(
                request, "login.html", 401, title="Sign in", next=target, message=message
            )
        response = RedirectResponse(target, status_code=303)
        set_key_cookie(response, request, key)
        return response

    async def logout(self, request: Request) -> Response:
        if not same_origin(request):
            return self.render(request, "error.html", 403, error=_CROSS_SITE, title="Error")
        response = RedirectResponse(CONSOLE_PREFIX + "/login", status_code=303)
        clear_key_cookie(response, request)
        return response

    def app(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route(CONSOLE_PREFIX, _home, methods=["GET"]),
            Route(CONSOLE_PREFIX + "/", _home, methods=["GET"]),
            Route(CONSOLE_PREFIX + "/login", self.login_form, methods=["GET"]),
            Route(CONSOLE_PREFIX + "/login", self.login, methods=["POST"]),
            Route(CONSOLE_PREFIX + "/logout", self.logout, methods=["POST"]),
            *pages.routes(self, CONSOLE_PREFIX),
            *traces.routes(self, CONSOLE_PREFIX),
            *proxy.routes(self, CONSOLE_PREFIX),
            Mount(
                CONSOLE_PREFIX + "/static",
                StaticFiles(packages=[("cupola.console", "static")]),
            ),
        ]
        return Starlette(routes=routes)


_CROSS_SITE = ApiError(403, "this request did not come from the console's own pages", None)


async def _home(request: Request) -> Response:
    return RedirectResponse(CONSOLE_PREFIX + "/playground", status_code=307)


class ConsoleMount:
    """The console at ``/console`` beside ``app`` (the API): requests under the prefix go to
    the console, everything else (lifespan included) to ``app``."""

    def __init__(self, app: ASGIApp, console: ASGIApp) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (
            path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")
        ):
            await self.console(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def with_console(api_app: ASGIApp, config: ConsoleConfig) -> ConsoleMount:
    """``api_app`` with the console mounted at ``/console``."""
    return ConsoleMount(api_app, Console(api_app, config).app())

"""The console's pages: each reads the project through the API (as the signed-in key) and
renders a template."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cupola.console.api import ApiError, Caller
from cupola.console.diff import diff_definitions

if TYPE_CHECKING:
    from cupola.console.app import Console

PAGE = 100
"""How many agents, versions, toolboxes or items a page lists."""


def pretty_json(value: Any) -> str:
    """A value as indented JSON (a string that holds JSON is parsed first)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    text: str = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    return text


def when(value: Any) -> str:
    """A Unix time as UTC text."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _version_number(raw: str | None) -> str | None:
    return raw if raw is not None and raw.isdigit() else None


class Pages:
    """The pages, as handlers ``Console.guard`` wraps."""

    def __init__(self, console: Console, prefix: str) -> None:
        self.console = console
        self.api = console.api
        self.prefix = prefix

    async def playground(self, request: Request, caller: Caller) -> Response:
        agents, deployments = await asyncio.gather(
            self.api.get(caller, self.api.path("agents"), limit=PAGE),
            self.api.get(caller, self.api.path("deployments")),
        )
        versions = await self._versions(caller, agents["data"])
        return self.console.render(
            request,
            "playground.html",
            title="Playground",
            agents=agents["data"],
            versions=versions,
            deployments=deployments["value"],
            chosen=request.query_params.get("target", ""),
        )

    async def _versions(self, caller: Caller, agents: list[dict[str, Any]]) -> dict[str, list[str]]:
        """Each agent's version numbers, newest first (listed only for agents with more
        than one: version 1 alone needs no call)."""
        several = [a["name"] for a in agents if a["versions"]["latest"]["version"] != "1"]
        found = await asyncio.gather(
            *(
                self.api.get(
                    caller, self.api.path("agents", name, "versions"), limit=PAGE, order="desc"
                )
                for name in several
            )
        )
        versions = {a["name"]: [a["versions"]["latest"]["version"]] for a in agents}
        for name, page in zip(several, found, strict=True):
            versions[name] = [v["version"] for v in page["data"]]
        return versions

    async def agents(self, request: Request, caller: Caller) -> Response:
        found = await self.api.get(caller, self.api.path("agents"), limit=PAGE)
        return self.console.render(request, "agents.html", title="Agents", agents=found["data"])

    async def agent(self, request: Request, caller: Caller) -> Response:
        name = request.path_params["name"]
        details = await self.api.get(caller, self.api.path("agents", name))
        versions = await self.api.get(
            caller, self.api.path("agents", name, "versions"), limit=PAGE, order="desc"
        )
        labels = await self.api.get(caller, self.api.path("agents", name, "labels"))
        by_version: dict[str, list[str]] = {}
        for label in labels["data"]:
            by_version.setdefault(str(label["version"]), []).append(label["label"])
        listed = versions["data"]
        return self.console.render(
            request,
            "agent.html",
            title=f"Agent {name}",
            agent=details,
            versions=listed,
            labels=by_version,
            default_version=details["versions"]["latest"]["version"],
            older=listed[1]["version"] if len(listed) > 1 else listed[0]["version"],
        )

    async def agent_diff(self, request: Request, caller: Caller) -> Response:
        name = request.path_params["name"]
        left = _version_number(request.query_params.get("from"))
        right = _version_number(request.query_params.get("to"))
        if left is None or right is None:
            raise ApiError(400, "choose two version numbers to compare (from and to)", None)
        before = await self.api.get(caller, self.api.path("agents", name, "versions", left))
        after = await self.api.get(caller, self.api.path("agents", name, "versions", right))
        versions = await self.api.get(
            caller, self.api.path("agents", name, "versions"), limit=PAGE, order="desc"
        )
        return self.console.render(
            request,
            "diff.html",
            title=f"Agent {name}: version {left} to {right}",
            name=name,
            before=before,
            after=after,
            versions=[v["version"] for v in versions["data"]],
            diff=diff_definitions(before["definition"], after["definition"]),
        )

    async def deployments(self, request: Request, caller: Caller) -> Response:
        found = await self.api.get(caller, self.api.path("deployments"))
        return self.console.render(
            request, "deployments.html", title="Deployments", deployments=found["value"]
        )

    async def toolboxes(self, request: Request, caller: Caller) -> Response:
        found = await self.api.get(caller, self.api.path("toolboxes"), limit=PAGE)
        return self.console.render(
            request, "toolboxes.html", title="Toolboxes", toolboxes=found["data"]
        )

    async def toolbox(self, request: Request, caller: Caller) -> Response:
        name = request.path_params["name"]
        details = await self.api.get(caller, self.api.path("toolboxes", name))
        versions = await self.api.get(
            caller, self.api.path("toolboxes", name, "versions"), limit=PAGE, order="desc"
        )
        return self.console.render(
            request,
            "toolbox.html",
            title=f"Toolbox {name}",
            toolbox=details,
            versions=versions["data"],
        )

    async def browse(self, request: Request, caller: Caller) -> Response:
        wanted = request.query_params.get("id", "").strip()
        for kind, start in (("conversations", "conv"), ("responses", "resp")):
            if wanted.startswith(start):
                target = f"{self.prefix}/{kind}/{quote(wanted, safe='')}"
                return RedirectResponse(target, status_code=303)
        message = f"{wanted!r} is not a conversation or response id" if wanted else None
        return self.console.render(
            request, "browse.html", status=400 if message else 200, title="Browse", message=message
        )

    async def conversation(self, request: Request, caller: Caller) -> Response:
        conversation_id = request.path_params["id"]
        base = ("openai", "v1", "conversations", conversation_id)
        found = await self.api.get(caller, self.api.path(*base))
        items = await self.api.get(caller, self.api.path(*base, "items"), limit=PAGE, order="asc")
        return self.console.render(
            request,
            "conversation.html",
            title=f"Conversation {conversation_id}",
            conversation=found,
            items=items["data"],
            more=items.get("has_more", False),
        )

    async def response(self, request: Request, caller: Caller) -> Response:
        response_id = request.path_params["id"]
        base = ("openai", "v1", "responses", response_id)
        found = await self.api.get(caller, self.api.path(*base))
        inputs = await self.api.get(
            caller, self.api.path(*base, "input_items"), limit=PAGE, order="asc"
        )
        return self.console.render(
            request,
            "response.html",
            title=f"Response {response_id}",
            response=found,
            inputs=inputs["data"],
        )

    def routes(self) -> list[Route]:
        guard, prefix = self.console.guard, self.prefix
        return [
            Route(prefix + "/playground", guard(self.playground), methods=["GET"]),
            Route(prefix + "/agents", guard(self.agents), methods=["GET"]),
            Route(prefix + "/agents/{name}", guard(self.agent), methods=["GET"]),
            Route(prefix + "/agents/{name}/diff", guard(self.agent_diff), methods=["GET"]),
            Route(prefix + "/deployments", guard(self.deployments), methods=["GET"]),
            Route(prefix + "/toolboxes", guard(self.toolboxes), methods=["GET"]),
            Route(prefix + "/toolboxes/{name}", guard(self.toolbox), methods=["GET"]),
            Route(prefix + "/conversations", guard(self.browse), methods=["GET"]),
            Route(prefix + "/conversations/{id}", guard(self.conversation), methods=["GET"]),
            Route(prefix + "/responses/{id}", guard(self.response), methods=["GET"]),
        ]


def routes(console: Console, prefix: str) -> list[Route]:
    """The console's pages under ``prefix``."""
    return Pages(console, prefix).routes()

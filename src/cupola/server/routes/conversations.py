"""``/conversations`` and their items, as the openai SDK calls them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cupola.domain import Conversation
from cupola.exceptions import UserError
from cupola.ids import new_id
from cupola.runtime.items import normalize_item
from cupola.runtime.request import Metadata
from cupola.server.http import JSONResponse, list_envelope, parse_body, query_int, query_order
from cupola.server.openapi import PAGE, api
from cupola.server.schemas.common import Deleted, Item
from cupola.server.schemas.objects import ConversationObject, ItemPage
from cupola.server.services import Services

MAX_ITEMS_PER_CALL = 20


class CreateConversation(BaseModel):
    model_config = ConfigDict(extra="allow")
    items: list[Any] | None = None
    metadata: Metadata = None


class UpdateConversation(BaseModel):
    model_config = ConfigDict(extra="allow")
    metadata: Metadata


class AddItems(BaseModel):
    model_config = ConfigDict(extra="allow")
    items: list[Any]


def conversation_object(conv: Conversation) -> dict[str, Any]:
    return {
        "id": conv.id,
        "object": "conversation",
        "created_at": conv.created_at,
        "metadata": conv.metadata,
    }


def _items(raw: list[Any] | None) -> list[dict[str, Any]]:
    raw = raw or []
    if len(raw) > MAX_ITEMS_PER_CALL:
        raise UserError(f"at most {MAX_ITEMS_PER_CALL} items can be added at once", param="items")
    return [normalize_item(item, f"items[{i}]") for i, item in enumerate(raw)]


def routes(s: Services) -> list[Route]:
    @api(
        body=CreateConversation,
        response=ConversationObject,
        summary="Create a conversation, with up to 20 items.",
    )
    async def create(request: Request) -> Response:
        body = await parse_body(request, CreateConversation)
        conv = await s.store.create_conversation(
            s.project(request), new_id("conv"), body.metadata or {}, _items(body.items)
        )
        return JSONResponse(conversation_object(conv))

    @api(response=ConversationObject, summary="Retrieve a conversation.")
    async def retrieve(request: Request) -> Response:
        conv = await s.store.get_conversation(
            s.project(request), request.path_params["conversation_id"]
        )
        return JSONResponse(conversation_object(conv))

    @api(
        body=UpdateConversation,
        response=ConversationObject,
        summary="Replace a conversation's metadata.",
    )
    async def update(request: Request) -> Response:
        body = await parse_body(request, UpdateConversation)
        conv = await s.store.update_conversation(
            s.project(request), request.path_params["conversation_id"], body.metadata or {}
        )
        return JSONResponse(conversation_object(conv))

    @api(response=Deleted, summary="Delete a conversation with its items.")
    async def delete(request: Request) -> Response:
        conversation_id = request.path_params["conversation_id"]
        await s.store.delete_conversation(s.project(request), conversation_id)
        return JSONResponse(
            {"id": conversation_id, "object": "conversation.deleted", "deleted": True}
        )

    @api(body=AddItems, response=ItemPage, summary="Append up to 20 items to a conversation.")
    async def add_items(request: Request) -> Response:
        body = await parse_body(request, AddItems)
        items = _items(body.items)
        await s.store.add_conversation_items(
            s.project(request), request.path_params["conversation_id"], items
        )
        return JSONResponse(list_envelope(items, False))

    @api(response=ItemPage, query=PAGE, summary="List a conversation's items.")
    async def list_items(request: Request) -> Response:
        page = await s.store.list_conversation_items(
            s.project(request),
            request.path_params["conversation_id"],
            limit=query_int(request, "limit", 20),
            order=query_order(request),
            after=request.query_params.get("after") or None,
        )
        return JSONResponse(list_envelope(page.data, page.has_more))

    @api(response=Item, summary="Retrieve one item of a conversation.")
    async def get_item(request: Request) -> Response:
        item = await s.store.get_conversation_item(
            s.project(request),
            request.path_params["conversation_id"],
            request.path_params["item_id"],
        )
        return JSONResponse(item)

    @api(response=ConversationObject, summary="Delete one item; answers the conversation.")
    async def delete_item(request: Request) -> Response:
        conv = await s.store.delete_conversation_item(
            s.project(request),
            request.path_params["conversation_id"],
            request.path_params["item_id"],
        )
        return JSONResponse(conversation_object(conv))

    base = "/conversations/{conversation_id}"
    return [
        Route("/conversations", create, methods=["POST"]),
        Route(base, retrieve, methods=["GET"]),
        Route(base, update, methods=["POST"]),
        Route(base, delete, methods=["DELETE"]),
        Route(base + "/items", add_items, methods=["POST"]),
        Route(base + "/items", list_items, methods=["GET"]),
        Route(base + "/items/{item_id}", get_item, methods=["GET"]),
        Route(base + "/items/{item_id}", delete_item, methods=["DELETE"]),
    ]

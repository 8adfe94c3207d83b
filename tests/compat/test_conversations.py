"""The openai SDK's Conversations API against a live cupola, and responses that use it."""

from __future__ import annotations

import openai
import pytest

from live_server import LiveServer


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)


def test_conversation_lifecycle(client: openai.OpenAI) -> None:
    conv = client.conversations.create(
        metadata={"topic": "trip"},
        items=[{"type": "message", "role": "user", "content": "seed message"}],
    )
    assert conv.id.startswith("conv_") and conv.metadata == {"topic": "trip"}
    assert client.conversations.retrieve(conv.id).created_at == conv.created_at

    updated = client.conversations.update(conv.id, metadata={"topic": "hotel"})
    assert updated.metadata == {"topic": "hotel"}

    added = client.conversations.items.create(
        conv.id,
        items=[
            {"type": "message", "role": "user", "content": "second"},
            {"type": "message", "role": "assistant", "content": "third"},
        ],
    )
    assert len(added.data) == 2
    listed = client.conversations.items.list(conv.id, order="asc")
    texts = [item.content[0].text for item in listed.data]  # type: ignore[union-attr]
    assert texts == ["seed message", "second", "third"]
    newest_first = client.conversations.items.list(conv.id)
    assert [i.id for i in newest_first.data] == [i.id for i in reversed(listed.data)]

    page = client.conversations.items.list(conv.id, limit=2, order="asc")
    assert len(page.data) == 2 and page.has_more
    assert len(list(client.conversations.items.list(conv.id, limit=1))) == 3

    one = client.conversations.items.retrieve(listed.data[1].id, conversation_id=conv.id)
    assert one.id == listed.data[1].id
    after_delete = client.conversations.items.delete(listed.data[1].id, conversation_id=conv.id)
    assert after_delete.id == conv.id
    assert len(client.conversations.items.list(conv.id).data) == 2
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(listed.data[1].id, conversation_id=conv.id)

    deleted = client.conversations.delete(conv.id)
    assert deleted.deleted and deleted.id == conv.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)


def test_responses_extend_a_conversation(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    first = client.responses.create(model="echo", input="turn one", conversation=conv.id)
    second = client.responses.create(model="echo", input="turn two", conversation={"id": conv.id})
    assert second.output_text.splitlines() == [
        "user: turn one",
        f"assistant: {first.output_text}",
        "user: turn two",
    ]
    items = client.conversations.items.list(conv.id, order="asc").data
    assert [i.type for i in items] == ["message"] * 4
    assert [i.role for i in items] == ["user", "assistant", "user", "assistant"]  # type: ignore[union-attr]
    assert items[1].id == first.output[0].id


def test_failed_response_leaves_the_conversation_unchanged(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "before"}])
    failed = client.responses.create(model="unreachable", input="lost", conversation=conv.id)
    assert failed.status == "failed"
    items = client.conversations.items.list(conv.id).data
    assert len(items) == 1

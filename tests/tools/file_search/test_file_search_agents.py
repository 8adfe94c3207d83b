"""File search end to end: files uploaded and indexed through the openai SDK, then an agent
answers from them with the file_search tool."""

from __future__ import annotations

import openai

from live_server import LiveServer


def test_agent_answers_from_uploaded_files(server: LiveServer, unique: str) -> None:
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    policy = client.files.create(
        file=("policy.md", b"# Refund policy\nRefunds are accepted within 30 days of purchase."),
        purpose="assistants",
    )
    other = client.files.create(
        file=("shipping.md", b"# Shipping\nParcels leave the warehouse within two days."),
        purpose="assistants",
    )
    store = client.vector_stores.create(name=f"docs-{unique}", file_ids=[policy.id, other.id])
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 2

    response = client.responses.create(
        model="searcher",
        input="What is your refund policy?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
    )
    assert response.status == "completed", response.error
    call, message = response.output
    assert call.type == "file_search_call" and call.queries == ["refund policy"]
    assert call.results and call.results[0].filename == "policy.md"
    assert "30 days" in (call.results[0].text or "")
    assert response.output_text == "Refunds are accepted within 30 days."


def test_unknown_vector_store_is_404(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    try:
        client.responses.create(
            model="searcher",
            input="refund?",
            tools=[{"type": "file_search", "vector_store_ids": ["vs_missing"]}],
        )
    except openai.NotFoundError as exc:
        assert "vs_missing" in str(exc)
    else:
        raise AssertionError("expected a 404")

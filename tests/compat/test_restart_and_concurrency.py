"""Durability across a real process restart, and isolation under concurrent conversations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import openai

from live_server import LiveServer, free_port, serve_process


def test_everything_survives_a_restart(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "cupola.yaml"
    config.write_text(
        f"project: default\ndatabase_url: {database_url}\n"
        "deployments:\n  - name: echo\n    provider: scripted\n    mode: echo\n"
    )
    port = free_port()
    with serve_process(config, port=port) as (url, _proc):
        project = f"{url}/api/projects/default"
        sdk = openai.OpenAI(base_url=f"{project}/openai/v1", api_key="x", max_retries=0)
        for instructions in ("v1", "v2"):
            r = httpx.post(
                f"{project}/agents/durable/versions",
                json={
                    "definition": {"kind": "prompt", "model": "echo", "instructions": instructions}
                },
            )
            assert r.status_code == 200
        conv = sdk.conversations.create(metadata={"k": "v"})
        response = sdk.responses.create(
            input="remember me",
            conversation=conv.id,
            extra_body={"agent_reference": {"name": "durable", "version": "1"}},
        )
        assert response.status == "completed"
    with serve_process(config, port=port) as (url, _proc):
        project = f"{url}/api/projects/default"
        sdk = openai.OpenAI(base_url=f"{project}/openai/v1", api_key="x", max_retries=0)
        versions = httpx.get(f"{project}/agents/durable/versions").json()["data"]
        assert [v["definition"]["instructions"] for v in versions] == ["v2", "v1"]
        assert sdk.conversations.retrieve(conv.id).metadata == {"k": "v"}
        items = sdk.conversations.items.list(conv.id, order="asc").data
        assert [i.id for i in items] == [
            *[i.id for i in sdk.responses.input_items.list(response.id).data],
            response.output[0].id,
        ]
        again = sdk.responses.retrieve(response.id)
        assert again.output_text == response.output_text == "system: v1\nuser: remember me"
        follow = sdk.responses.create(
            input="still there?",
            conversation=conv.id,
            extra_body={"agent_reference": {"name": "durable"}},
        )
        assert "user: remember me" in follow.output_text and "system: v2" in follow.output_text


def test_fifty_concurrent_conversations_stay_separate(server: LiveServer) -> None:
    async def run() -> None:
        sdk = openai.AsyncOpenAI(base_url=server.openai_url, api_key="x", max_retries=0)

        async def converse(n: int) -> tuple[str, list[str]]:
            conv = await sdk.conversations.create(metadata={"n": str(n)})
            replies = []
            for turn in range(5):
                response = await sdk.responses.create(
                    model="echo", input=f"c{n}-t{turn}", conversation=conv.id
                )
                assert response.status == "completed", response.error
                replies.append(response.output_text)
            return conv.id, replies

        results = await asyncio.gather(*(converse(n) for n in range(50)))
        for n, (conv_id, replies) in enumerate(results):
            user_lines = [ln for ln in replies[-1].splitlines() if ln.startswith("user: ")]
            assert user_lines == [f"user: c{n}-t{t}" for t in range(5)]
            items = await sdk.conversations.items.list(conv_id, order="asc", limit=100)
            texts = [i.content[0].text for i in items.data]  # type: ignore[union-attr]
            assert len(texts) == 10
            assert texts[0::2] == [f"c{n}-t{t}" for t in range(5)]
            assert texts[1::2] == replies
            for other in range(50):
                if other != n:
                    assert f"c{other}-t" not in "\n".join(texts)
        await sdk.close()

    asyncio.run(run())

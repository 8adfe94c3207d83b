"""``/containers`` on a live server: the files snippets write are listed and downloadable with
the openai SDK; nothing outside a container's directory can be reached; the server stays
responsive while a snippet runs away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import orjson
import pytest

import live_server
from cupola.domain.records import Item
from cupola.models.base import ToolCall
from cupola.settings import DeploymentConfig, ScriptStep
from cupola.tools.base import ToolContext
from cupola.tools.code_interpreter import CodeInterpreterToolset, normalize_code_interpreter_tool
from cupola.tools.sandbox import Container, file_id_for
from live_server import LiveServer, make_settings, start_server

T = TypeVar("T")
CALC_SCRIPT = [
    ScriptStep(match=r"^45$", reply="The sum is 45."),
    ScriptStep(
        match=r"(?i)sum",
        tool_calls=[
            {
                "name": "code_interpreter",
                "arguments": {"code": "open('sum.txt', 'w').write('45')\nsum(range(10))"},
            }
        ],
    ),
    ScriptStep(reply="Ask me to sum something."),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live server whose data_dir is a temporary directory, with small limits."""
    root = tmp_path_factory.mktemp("code-interpreter")
    settings = make_settings(
        f"sqlite:///{root / 'cupola.db'}",
        data_dir=root,
        deployments=[
            *live_server.test_deployments(),
            DeploymentConfig(name="calc", provider="scripted", mode="script", script=CALC_SCRIPT),
        ],
        code_interpreter={"cpu_seconds": 1, "wall_seconds": 10, "memory_mb": 256},
    )
    live = start_server(settings)
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)


def submit(server: LiveServer, coro: Coroutine[Any, Any, T]) -> Future[T]:
    """Run ``coro`` on the server's own event loop, as the runtime will."""
    loop = server._server.servers[0].get_loop()
    return asyncio.run_coroutine_threadsafe(coro, loop)


def run_code(server: LiveServer, code: str, conversation: str) -> Item:
    tools = CodeInterpreterToolset(
        normalize_code_interpreter_tool({"type": "code_interpreter"}, "tools[0]"),
        server.settings.code_interpreter,
    )
    ctx = ToolContext(
        project=server.settings.project,
        response_id="resp_x",
        conversation_id=conversation,
        data_dir=server.settings.data_dir,
    )
    call = ToolCall("call_1", "code_interpreter", orjson.dumps({"code": code}).decode())
    return submit(server, tools.run(call, ctx)).result(timeout=30)


def test_written_files_are_listed_and_downloadable(
    server: LiveServer, client: openai.OpenAI, unique: str
) -> None:
    code = (
        "import os\nos.makedirs('out', exist_ok=True)\n"
        "open('out/report.csv', 'w').write('city,temp\\nTokyo,20\\n')\n"
        "open('raw.bin', 'wb').write(bytes(range(256)))\n"
        "print('saved')"
    )
    item = run_code(server, code, f"conv_{unique}")
    assert item["status"] == "completed" and item["outputs"][0]["logs"] == "saved\n"
    cid = item["container_id"]
    assert (server.settings.data_dir / "containers" / "default" / cid / "raw.bin").exists()

    box = client.containers.retrieve(cid)
    assert (box.id, box.object, box.status, box.name) == (
        cid,
        "container",
        "running",
        f"conv_{unique}",
    )

    files = client.containers.files.list(cid, order="asc")
    assert sorted(f.path for f in files.data) == ["out/report.csv", "raw.bin"]
    assert all(f.object == "container.file" and f.container_id == cid for f in files.data)
    assert all(f.source == "assistant" and f.id.startswith("cfile_") for f in files.data)
    report = next(f for f in files.data if f.path == "out/report.csv")
    assert report.bytes == len("city,temp\nTokyo,20\n")
    assert client.containers.files.retrieve(report.id, container_id=cid).path == "out/report.csv"

    content = client.containers.files.content.retrieve(report.id, container_id=cid)
    assert content.content == b"city,temp\nTokyo,20\n"
    raw = next(f for f in files.data if f.path == "raw.bin")
    assert client.containers.files.content.retrieve(raw.id, container_id=cid).content == bytes(
        range(256)
    )
    direct = httpx.get(f"{server.url}/v1/containers/{cid}/files/{raw.id}/content")
    assert direct.headers["content-type"] == "application/octet-stream"
    assert direct.headers["content-disposition"].startswith('attachment; filename="raw.bin"')

    page = client.containers.files.list(cid, limit=1, order="asc")
    assert len(page.data) == 1 and page.has_more
    assert len(list(client.containers.files.list(cid, limit=1))) == 2
    assert cid in [c.id for c in client.containers.list(limit=100)]


def test_image_output_url_downloads_the_png(server: LiveServer, unique: str) -> None:
    code = "open('chart.png', 'wb').write(b'\\x89PNG\\r\\n\\x1a\\nfake')"
    item = run_code(server, code, f"conv_{unique}")
    (image,) = [o for o in item["outputs"] if o["type"] == "image"]
    r = httpx.get(server.url + image["url"])
    assert r.status_code == 200 and r.content == b"\x89PNG\r\n\x1a\nfake"


def test_delete_file_and_container(server: LiveServer, client: openai.OpenAI, unique: str) -> None:
    item = run_code(server, "open('a.txt', 'w').write('a')", f"conv_{unique}")
    cid = item["container_id"]
    (file,) = client.containers.files.list(cid).data
    client.containers.files.delete(file.id, container_id=cid)
    assert client.containers.files.list(cid).data == []
    client.containers.delete(cid)
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(cid)


@pytest.mark.parametrize(
    "path",
    [
        "/containers/{cid}/files/..%2F..%2Fcupola.db/content",
        "/containers/{cid}/files/cfile_..%2F..%2Fcupola.db/content",
        "/containers/{cid}/files/{bad_id}/content",
        "/containers/{cid}/files/{secret_id}/content",
        "/containers/{cid}/files/{link_id}/content",
        "/containers/..%2F..%2F/files",
        "/containers/..%2Fcontainers%2Fdefault%2F{cid}/files",
        "/containers/cntr_doesnotexist/files",
        "/containers/{cid}/files/cfile_00000000000000000000000000000000",
    ],
)
def test_nothing_outside_the_container_is_served(
    server: LiveServer, unique: str, path: str
) -> None:
    item = run_code(server, "open('ok.txt', 'w').write('ok')", f"conv_{unique}")
    cid = item["container_id"]
    data_dir: Path = server.settings.data_dir
    (data_dir / "containers" / "default" / cid / "link.txt").symlink_to(data_dir / "cupola.db")
    url = path.format(
        cid=cid,
        bad_id="cfile_" + "0" * 31 + "g",
        secret_id=file_id_for(cid, "../../../cupola.db"),
        link_id=file_id_for(cid, "link.txt"),
    )
    r = httpx.get(f"{server.url}/v1{url}")
    assert r.status_code == 404, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    listed = httpx.get(f"{server.url}/v1/containers/{cid}/files").json()
    assert [f["path"] for f in listed["data"]] == ["ok.txt"]


def test_only_the_projects_containers(server: LiveServer, unique: str) -> None:
    item = run_code(server, "1", f"conv_{unique}")
    cid = item["container_id"]
    other = server.settings.data_dir / "containers" / "other"
    Container.ensure(server.settings.data_dir, "other", "cntr_otherproject", "x")
    assert (other / "cntr_otherproject").is_dir()
    assert httpx.get(f"{server.url}/v1/containers/cntr_otherproject").status_code == 404
    project = f"{server.url}/api/projects/default/openai/v1/containers/{cid}"
    assert httpx.get(project).status_code == 200
    elsewhere = f"{server.url}/api/projects/other/openai/v1/containers/cntr_otherproject"
    assert httpx.get(elsewhere).status_code == 404


def test_server_answers_while_a_snippet_runs_away(server: LiveServer, unique: str) -> None:
    tools = CodeInterpreterToolset(
        normalize_code_interpreter_tool({"type": "code_interpreter"}, "tools[0]"),
        server.settings.code_interpreter,
    )
    ctx = ToolContext("default", "resp_spin", f"conv_{unique}", server.settings.data_dir)
    call = ToolCall("call_1", "code_interpreter", '{"code": "while True: pass"}')
    started = time.monotonic()
    running = submit(server, tools.run(call, ctx))
    latencies: list[float] = []
    with httpx.Client(base_url=server.url) as http:
        while not running.done():
            t = time.perf_counter()
            assert http.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - t)
            time.sleep(0.02)
    item = running.result()
    assert time.monotonic() - started < 10
    assert item["status"] == "failed"
    assert item["outputs"][0]["logs"] == "killed: CPU time limit of 1 s"
    assert len(latencies) > 10 and max(latencies) < 0.5, latencies


def test_a_response_runs_the_code_interpreter(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    response = client.responses.create(
        model="calc",
        input="Sum the numbers 0 to 9",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        conversation=conv.id,
    )
    assert response.status == "completed"
    call, message = response.output
    assert call.type == "code_interpreter_call" and call.status == "completed"
    assert call.outputs is not None and call.outputs[0].type == "logs"
    assert call.outputs[0].logs == "45\n"
    assert message.type == "message" and response.output_text == "The sum is 45."
    (file,) = client.containers.files.list(call.container_id).data
    assert file.path == "sum.txt"
    content = client.containers.files.content.retrieve(file.id, container_id=call.container_id)
    assert content.content == b"45"
    again = client.responses.create(
        model="calc",
        input="Sum them again",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        conversation=conv.id,
    )
    assert again.output[0].container_id == call.container_id  # type: ignore[union-attr]


def test_without_a_sandbox_the_response_completes_with_a_failed_call(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """No bubblewrap and no unsafe setting: a clear error on the call item, never a 5xx."""
    root = tmp_path_factory.mktemp("no-sandbox")
    settings = make_settings(
        f"sqlite:///{root / 'cupola.db'}",
        data_dir=root,
        deployments=[
            DeploymentConfig(name="calc", provider="scripted", mode="script", script=CALC_SCRIPT)
        ],
        code_interpreter={"bwrap": "/nonexistent/bwrap"},
    )
    live = start_server(settings)
    try:
        raw = httpx.post(
            f"{live.url}/v1/responses",
            json={"model": "calc", "input": "sum", "tools": [{"type": "code_interpreter"}]},
            timeout=30,
        )
    finally:
        live.stop()
    assert raw.status_code == 200
    body = raw.json()
    call = body["output"][0]
    assert body["status"] == "completed" and call["status"] == "failed"
    assert "cannot run code: no sandbox" in call["outputs"][0]["logs"]
    assert "apt-get install bubblewrap" in call["outputs"][0]["logs"]

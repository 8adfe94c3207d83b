"""CodeInterpreterToolset: the tool entry, the function the model sees, the items it makes."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.responses import ResponseCodeInterpreterToolCall

from cupola.exceptions import UserError
from cupola.models.base import ToolCall
from cupola.settings import CodeInterpreterSettings
from cupola.tools.base import ToolContext
from cupola.tools.code_interpreter import (
    CodeInterpreterToolset,
    check_sandbox,
    normalize_code_interpreter_tool,
    render_code_interpreter_call,
)
from cupola.tools.sandbox import container_id_for

SETTINGS = CodeInterpreterSettings(
    cpu_seconds=1, memory_mb=256, wall_seconds=10, max_output_bytes=4096
)


def ctx(
    tmp_path: Path, conversation: str | None = "conv_1", response: str = "resp_1"
) -> ToolContext:
    return ToolContext(
        project="default",
        response_id=response,
        conversation_id=conversation,
        data_dir=tmp_path,
    )


def toolset(container: Any = None) -> CodeInterpreterToolset:
    raw: dict[str, Any] = {"type": "code_interpreter"}
    if container is not None:
        raw["container"] = container
    return CodeInterpreterToolset(normalize_code_interpreter_tool(raw, "tools[0]"), SETTINGS)


def call(code: str) -> ToolCall:
    return ToolCall(
        call_id="call_1", name="code_interpreter", arguments=orjson.dumps({"code": code}).decode()
    )


def logs(item: dict[str, Any]) -> str:
    return "".join(o["logs"] for o in item["outputs"] if o["type"] == "logs")


@pytest.mark.parametrize(
    ("raw", "echoed"),
    [
        ({"type": "code_interpreter"}, {"type": "code_interpreter", "container": {"type": "auto"}}),
        (
            {"type": "code_interpreter", "container": {"type": "auto"}},
            {"type": "code_interpreter", "container": {"type": "auto"}},
        ),
        (
            {
                "type": "code_interpreter",
                "container": {"type": "auto", "file_ids": ["file_1"], "memory_limit": "1g"},
            },
            {
                "type": "code_interpreter",
                "container": {"type": "auto", "file_ids": ["file_1"], "memory_limit": "1g"},
            },
        ),
        (
            {"type": "code_interpreter", "container": "cntr_abc123"},
            {"type": "code_interpreter", "container": "cntr_abc123"},
        ),
        (
            {"type": "code_interpreter", "name": "ci", "description": "Python", "container": None},
            {
                "type": "code_interpreter",
                "container": {"type": "auto"},
                "name": "ci",
                "description": "Python",
            },
        ),
    ],
)
def test_normalize_accepts_and_echoes(raw: dict[str, Any], echoed: dict[str, Any]) -> None:
    assert normalize_code_interpreter_tool(raw, "tools[0]") == echoed


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ({"type": "code_interpreter", "container": "../../etc"}, "tools[0].container"),
        ({"type": "code_interpreter", "container": {"type": "manual"}}, "tools[0].container"),
        ({"type": "code_interpreter", "container": 7}, "tools[0].container"),
        (
            {"type": "code_interpreter", "container": {"type": "auto", "file_ids": "f"}},
            "tools[0].container.file_ids",
        ),
        (
            {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "2g"}},
            "tools[0].container.memory_limit",
        ),
        ({"type": "code_interpreter", "containers": {}}, "tools[0]"),
        ({"type": "code_interpreter", "name": 3}, "tools[0].name"),
        ({"type": "function"}, "tools[0].type"),
    ],
)
def test_normalize_refuses(raw: dict[str, Any], param: str) -> None:
    with pytest.raises(UserError) as info:
        normalize_code_interpreter_tool(raw, "tools[0]")
    assert info.value.param == param


def test_the_model_sees_one_function_taking_code() -> None:
    (spec,) = toolset().functions()
    assert spec.name == "code_interpreter" and toolset().label == "code_interpreter"
    assert spec.parameters["properties"] == {
        "code": {"type": "string", "description": "The Python code to run."}
    }
    assert spec.parameters["required"] == ["code"]
    assert spec.description is not None and "print" in spec.description


async def test_run_gives_an_openai_item(tmp_path: Path) -> None:
    item = await toolset().run(call("print('hi')\nsum(range(10))"), ctx(tmp_path))
    parsed = ResponseCodeInterpreterToolCall.model_validate(item)
    assert parsed.status == "completed" and parsed.id.startswith("ci_")
    assert parsed.code == "print('hi')\nsum(range(10))"
    assert parsed.container_id == container_id_for("conv_1")
    assert item["outputs"] == [{"type": "logs", "logs": "hi\n45\n"}]


def unsandboxed(tmp_path: Path, unsafe: bool, bwrap: str = "/nonexistent/bwrap") -> Any:
    settings = SETTINGS.model_copy(update={"bwrap": bwrap, "unsafe_without_sandbox": unsafe})
    tool = normalize_code_interpreter_tool({"type": "code_interpreter"}, "tools[0]")
    return CodeInterpreterToolset(tool, settings), settings


async def test_without_bubblewrap_the_call_is_refused(tmp_path: Path) -> None:
    tools, _ = unsandboxed(tmp_path, unsafe=False)
    item = await tools.run(call("open('ran', 'w')"), ctx(tmp_path))
    assert ResponseCodeInterpreterToolCall.model_validate(item).status == "failed"
    assert logs(item).startswith(
        "the code interpreter cannot run code: no sandbox "
        "(bubblewrap ('/nonexistent/bwrap') is not installed). To fix it, install bubblewrap"
    )
    assert "unsafe_without_sandbox: true" in logs(item)
    assert not (tmp_path / "containers").exists()  # nothing ran, nothing was created


async def test_a_bwrap_that_cannot_sandbox_here_is_refused_too(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    tools, settings = unsandboxed(tmp_path, unsafe=False, bwrap=str(fake))
    item = await tools.run(call("1"), ctx(tmp_path))
    assert item["status"] == "failed"
    assert "No permissions to create new namespace" in logs(item)


async def test_the_unsafe_setting_runs_unsandboxed_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tools, settings = unsandboxed(tmp_path, unsafe=True)
    item = await tools.run(call("import os\nos.getcwd()"), ctx(tmp_path))
    workdir = tmp_path / "containers" / "default" / container_id_for("conv_1")
    assert item["status"] == "completed" and logs(item) == repr(str(workdir)) + "\n"
    with caplog.at_level(logging.WARNING, "cupola.tools.code_interpreter"):
        assert await check_sandbox(settings, tmp_path) is False
    assert "UNSAFE" in caplog.text and "snippets run unsandboxed" in caplog.text


async def test_start_up_check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "cupola.tools.code_interpreter"):
        assert await check_sandbox(SETTINGS, tmp_path) is True
        assert caplog.text == ""
        _, missing = unsandboxed(tmp_path, unsafe=False)
        assert await check_sandbox(missing, tmp_path) is False
    assert "code_interpreter: calls will fail: bubblewrap" in caplog.text


async def test_limits_make_a_failed_item(tmp_path: Path) -> None:
    item = await toolset().run(call("while True: pass"), ctx(tmp_path))
    assert ResponseCodeInterpreterToolCall.model_validate(item).status == "failed"
    assert logs(item) == "killed: CPU time limit of 1 s"
    hog = await toolset().run(call("b = bytearray(2_000_000_000)"), ctx(tmp_path))
    assert hog["status"] == "failed" and logs(hog).endswith("killed: memory limit of 256 MB")


async def test_one_container_per_conversation_or_response(tmp_path: Path) -> None:
    tools = toolset()
    write = call("open('note.txt', 'w').write('kept')")
    read = call("print(open('note.txt').read())")
    first = await tools.run(write, ctx(tmp_path, "conv_a", "resp_1"))
    same_conv = await tools.run(read, ctx(tmp_path, "conv_a", "resp_2"))
    assert same_conv["container_id"] == first["container_id"] and logs(same_conv) == "kept\n"
    other = await tools.run(read, ctx(tmp_path, "conv_b", "resp_3"))
    assert other["container_id"] != first["container_id"]
    assert "FileNotFoundError" in logs(other)
    no_conv = await tools.run(read, ctx(tmp_path, None, "resp_4"))
    assert no_conv["container_id"] == container_id_for("resp_4")
    root = tmp_path / "containers" / "default"
    assert (root / first["container_id"] / "note.txt").read_text() == "kept"


async def test_a_named_container_is_shared(tmp_path: Path) -> None:
    tools = toolset("cntr_shared1")
    await tools.run(call("open('x.txt', 'w').write('1')"), ctx(tmp_path, None, "resp_1"))
    item = await tools.run(call("open('x.txt').read()"), ctx(tmp_path, None, "resp_2"))
    assert item["container_id"] == "cntr_shared1" and logs(item) == "'1'\n"


async def test_arguments(tmp_path: Path) -> None:
    tools = toolset()
    raw = ToolCall(call_id="c", name="code_interpreter", arguments="print(6 * 7)")
    assert logs(await tools.run(raw, ctx(tmp_path))) == "42\n"  # raw Python, not JSON
    as_string = ToolCall(call_id="c", name="code_interpreter", arguments='"1 + 1"')
    assert logs(await tools.run(as_string, ctx(tmp_path))) == "2\n"
    number = ToolCall(call_id="c", name="code_interpreter", arguments="[1, 2][1]")
    assert logs(await tools.run(number, ctx(tmp_path))) == "2\n"
    bad = ToolCall(call_id="c", name="code_interpreter", arguments='{"source": "1"}')
    item = await tools.run(bad, ctx(tmp_path))
    assert item["status"] == "failed" and item["code"] is None and "code" in logs(item)
    ResponseCodeInterpreterToolCall.model_validate(item)


def png(width: int = 1, height: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    pixels = zlib.compress(b"".join(b"\0" + b"\xff\0\0" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def test_png_files_written_become_image_outputs(tmp_path: Path) -> None:
    code = f"open('plot.png', 'wb').write({png()!r})\nopen('data.csv', 'w').write('a,b')"
    item = await toolset().run(call(code), ctx(tmp_path))
    parsed = ResponseCodeInterpreterToolCall.model_validate(item)
    images = [o for o in parsed.outputs or [] if o.type == "image"]
    assert len(images) == 1
    url = images[0].url
    assert url.startswith(f"/v1/containers/{item['container_id']}/files/cfile_")
    again = await toolset().run(call("print('no new image')"), ctx(tmp_path))
    assert [o["type"] for o in again["outputs"]] == ["logs"]


def test_render_for_history() -> None:
    item = {
        "id": "ci_1",
        "type": "code_interpreter_call",
        "status": "completed",
        "code": "1 + 1",
        "container_id": "cntr_x",
        "outputs": [{"type": "logs", "logs": "2\n"}, {"type": "image", "url": "/v1/x"}],
    }
    rendered = render_code_interpreter_call(item)
    assert rendered.call == ToolCall(
        call_id="ci_1", name="code_interpreter", arguments='{"code":"1 + 1"}'
    )
    assert rendered.output == "2\n[1 image(s) saved in the container]"
    empty = render_code_interpreter_call({**item, "outputs": [{"type": "logs", "logs": ""}]})
    assert empty.output == "(no output)"


class Files:
    async def read_file(self, project: str, file_id: str) -> tuple[str, bytes]:
        return {"file_1": ("../sales.csv", b"month,total\njan,3\n")}[file_id]


async def test_file_ids_are_copied_into_the_container(tmp_path: Path) -> None:
    tool = normalize_code_interpreter_tool(
        {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file_1"]}},
        "tools[0]",
    )
    tools = CodeInterpreterToolset(tool, SETTINGS, files=Files())
    assert await tools.start(ctx(tmp_path)) == []
    item = await tools.run(call("print(open('sales.csv').read().splitlines()[1])"), ctx(tmp_path))
    assert logs(item) == "jan,3\n"

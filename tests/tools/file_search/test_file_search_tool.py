"""FileSearchToolset against a store built here: the right chunk comes back, the item parses as
openai's ResponseFileSearchToolCall, and the model sees the results in history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.responses import ResponseFileSearchToolCall

from cupola.exceptions import NotFound, UserError
from cupola.models.base import ToolCall
from cupola.store import SqlStore
from cupola.tools.base import ToolContext
from cupola.tools.file_search import (
    FileSearchToolset,
    index_file,
    matches,
    normalize_file_search_tool,
    render_file_search_call,
    search_files,
)

PROJECT = "default"
POLICY = " ".join(
    ["Our travel agency answers every message within one business day."] * 40
    + ["Pets are welcome in all partner hotels for a fee of 20 euros per night."]
    + ["Loyalty members collect points on every booking they make."] * 40
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    db = SqlStore(f"sqlite:///{tmp_path / 'cupola.db'}")
    await db.open()
    yield db
    await db.close()


async def make_store(db: SqlStore) -> tuple[str, dict[str, str]]:
    files = {
        "policy.txt": POLICY.encode(),
        "menu.md": b"# Menu\nRamen, sushi and tempura are served all day.",
        "image.png": b"\x89PNG\r\n\x1a\n\x00",
    }
    ids: dict[str, str] = {}
    indexed = []
    for name, content in files.items():
        record = await db.create_file(PROJECT, name, "assistants", content)
        ids[name] = record.id
        indexed.append(await index_file(db, PROJECT, record.id, {"kind": name.split(".")[1]}))
    vs = await db.create_vector_store(PROJECT, "docs", {}, indexed)
    assert (vs.file_counts.completed, vs.file_counts.failed) == (2, 1)
    return vs.id, ids


def ctx() -> ToolContext:
    return ToolContext(PROJECT, "resp_1", None, Path("."))


def call(arguments: Any) -> ToolCall:
    text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
    return ToolCall("call_1", "file_search", text)


async def test_run_returns_the_right_chunk(store: SqlStore) -> None:
    vs, ids = await make_store(store)
    toolset = FileSearchToolset(
        {"type": "file_search", "vector_store_ids": [vs], "max_num_results": 3}, store, PROJECT
    )
    assert await toolset.start(ctx()) == []
    [spec] = toolset.functions()
    assert spec.name == "file_search" and spec.parameters["required"] == ["queries"]

    item = await toolset.run(call({"queries": ["are pets allowed in the hotel?"]}), ctx())
    parsed = ResponseFileSearchToolCall.model_validate(item)
    assert parsed.id.startswith("fs_") and parsed.status == "completed"
    assert parsed.queries == ["are pets allowed in the hotel?"]
    assert parsed.results is not None and 1 <= len(parsed.results) <= 3
    top = parsed.results[0]
    assert top.file_id == ids["policy.txt"] and top.filename == "policy.txt"
    assert top.text is not None and "Pets are welcome" in top.text
    assert top.score is not None and 0 < top.score <= 1
    assert top.attributes == {"kind": "txt"}

    menu = await toolset.run(call({"queries": ["sushi", "ramen"]}), ctx())
    assert [r["filename"] for r in menu["results"]] == ["menu.md"]


async def test_rendered_history_shows_the_call_and_the_results(store: SqlStore) -> None:
    vs, _ = await make_store(store)
    toolset = FileSearchToolset({"type": "file_search", "vector_store_ids": [vs]}, store, PROJECT)
    item = await toolset.run(call({"queries": ["tempura"]}), ctx())
    rendered = render_file_search_call(item)
    assert rendered.call.name == "file_search" and rendered.call.call_id == item["id"]
    assert orjson.loads(rendered.call.arguments) == {"queries": ["tempura"]}
    assert rendered.output.startswith("[1] menu.md (score ")
    assert "Ramen, sushi and tempura" in rendered.output

    empty = render_file_search_call(await toolset.run(call({"queries": ["zeppelin"]}), ctx()))
    assert "No matching passages" in empty.output


async def test_filters_and_score_threshold_from_the_tool(store: SqlStore) -> None:
    vs, _ = await make_store(store)
    only_md = FileSearchToolset(
        {
            "type": "file_search",
            "vector_store_ids": [vs],
            "filters": {"type": "eq", "key": "kind", "value": "md"},
        },
        store,
        PROJECT,
    )
    item = await only_md.run(call({"queries": ["pets sushi"]}), ctx())
    assert {r["filename"] for r in item["results"]} == {"menu.md"}
    strict = FileSearchToolset(
        {
            "type": "file_search",
            "vector_store_ids": [vs],
            "ranking_options": {"score_threshold": 1},
        },
        store,
        PROJECT,
    )
    assert (await strict.run(call({"queries": ["sushi"]}), ctx()))["results"] == []


async def test_unknown_vector_store_fails_at_start(store: SqlStore) -> None:
    vs, _ = await make_store(store)
    toolset = FileSearchToolset(
        {"type": "file_search", "vector_store_ids": [vs, "vs_missing"]}, store, PROJECT
    )
    with pytest.raises(NotFound) as info:
        await toolset.start(ctx())
    assert info.value.status_code == 404 and "vs_missing" in info.value.message
    other_project = FileSearchToolset(
        {"type": "file_search", "vector_store_ids": [vs]}, store, "elsewhere"
    )
    with pytest.raises(NotFound):
        await other_project.start(ctx())


@pytest.mark.parametrize(
    "arguments", ["not json", {"queries": []}, {"queries": "  "}, {"queries": 5}, [1, 2]]
)
async def test_bad_arguments_give_a_failed_item(store: SqlStore, arguments: Any) -> None:
    vs, _ = await make_store(store)
    toolset = FileSearchToolset({"type": "file_search", "vector_store_ids": [vs]}, store, PROJECT)
    item = await toolset.run(call(arguments), ctx())
    parsed = ResponseFileSearchToolCall.model_validate(item)
    assert parsed.status == "failed" and parsed.results == []
    assert item["error"]
    assert render_file_search_call(item).output.startswith("File search failed: ")


async def test_a_single_query_string_is_accepted(store: SqlStore) -> None:
    vs, _ = await make_store(store)
    toolset = FileSearchToolset({"type": "file_search", "vector_store_ids": [vs]}, store, PROJECT)
    item = await toolset.run(call({"query": "loyalty points"}), ctx())
    assert item["status"] == "completed" and item["queries"] == ["loyalty points"]
    assert item["results"][0]["filename"] == "policy.txt"


async def test_a_store_deleted_after_start_fails_the_call(store: SqlStore) -> None:
    vs, _ = await make_store(store)
    toolset = FileSearchToolset({"type": "file_search", "vector_store_ids": [vs]}, store, PROJECT)
    await toolset.start(ctx())
    await store.delete_vector_store(PROJECT, vs)
    item = await toolset.run(call({"queries": ["pets"]}), ctx())
    assert item["status"] == "failed" and vs in item["error"]


async def test_read_file_serves_the_code_interpreter(store: SqlStore) -> None:
    record = await store.create_file(PROJECT, "data.csv", "assistants", b"a,b\n1,2\n")
    assert await store.read_file(PROJECT, record.id) == ("data.csv", b"a,b\n1,2\n")
    with pytest.raises(NotFound):
        await store.read_file("elsewhere", record.id)


async def test_search_files_spans_stores_without_duplicates(store: SqlStore) -> None:
    vs, ids = await make_store(store)
    menu = await index_file(store, PROJECT, ids["menu.md"])
    second = await store.create_vector_store(PROJECT, "copy", {}, [menu])
    hits = await search_files(store, PROJECT, [vs, second.id], ["sushi"])
    assert [h.file_id for h in hits] == [ids["menu.md"]]


def test_normalize_file_search_tool() -> None:
    tool = normalize_file_search_tool(
        {
            "type": "file_search",
            "vector_store_ids": ["vs_1", "vs_1", "vs_2"],
            "max_num_results": 5,
            "ranking_options": {"ranker": "auto", "score_threshold": 0.2},
        },
        "tools[0]",
    )
    assert tool == {
        "type": "file_search",
        "vector_store_ids": ["vs_1", "vs_2"],
        "filters": None,
        "max_num_results": 5,
        "ranking_options": {"ranker": "auto", "score_threshold": 0.2},
    }


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ({"vector_store_ids": []}, "tools[0].vector_store_ids"),
        ({"vector_store_ids": "vs_1"}, "tools[0].vector_store_ids"),
        ({"vector_store_ids": [1]}, "tools[0].vector_store_ids"),
        ({"vector_store_ids": ["vs"], "max_num_results": 0}, "tools[0].max_num_results"),
        ({"vector_store_ids": ["vs"], "max_num_results": 51}, "tools[0].max_num_results"),
        ({"vector_store_ids": ["vs"], "max_num_results": True}, "tools[0].max_num_results"),
        ({"vector_store_ids": ["vs"], "ranking_options": []}, "tools[0].ranking_options"),
        ({"vector_store_ids": ["vs"], "filters": {"type": "eq"}}, "tools[0].filters"),
    ],
)
def test_normalize_rejects_bad_entries(raw: dict[str, Any], param: str) -> None:
    with pytest.raises(UserError) as info:
        normalize_file_search_tool({"type": "file_search", **raw}, "tools[0]")
    assert info.value.param == param


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"type": "eq", "key": "team", "value": "ops"}, True),
        ({"type": "ne", "key": "team", "value": "ops"}, False),
        ({"type": "ne", "key": "missing", "value": "ops"}, True),
        ({"type": "gt", "key": "year", "value": 2020}, True),
        ({"type": "lte", "key": "year", "value": 2020}, False),
        ({"type": "gt", "key": "team", "value": 1}, False),
        ({"type": "eq", "key": "draft", "value": 1}, False),
        ({"type": "eq", "key": "draft", "value": True}, True),
        ({"type": "in", "key": "team", "value": ["ops", "dev"]}, True),
        ({"type": "nin", "key": "team", "value": ["ops"]}, False),
        ({"type": "nin", "key": "missing", "value": ["ops"]}, True),
        (
            {
                "type": "or",
                "filters": [
                    {"type": "eq", "key": "team", "value": "dev"},
                    {"type": "and", "filters": [{"type": "gte", "key": "year", "value": 2024}]},
                ],
            },
            True,
        ),
    ],
)
def test_attribute_filters(flt: dict[str, Any], expected: bool) -> None:
    assert matches({"team": "ops", "year": 2024, "draft": True}, flt) is expected

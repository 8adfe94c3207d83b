"""The file service on each store: uploads, indexing into vector stores and search, with
every check (a refused request stores and indexes nothing)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cupola.exceptions import NotFound, PayloadTooLarge, UserError
from cupola.runtime.services.files import FileEntry, batch_entries, search_queries
from cupola.server.app import build_services
from cupola.server.services import Services
from live_server import make_settings

P = "default"
PARIS = b"Paris is the capital of France. The Eiffel Tower is in Paris."
TOKYO = b"Tokyo is the capital of Japan. Sushi is popular in Tokyo."


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    s = build_services(make_settings(database_url, max_file_bytes=1000))
    await s.store.open()
    yield s
    await s.tools.aclose()
    await s.models.aclose()
    await s.store.close()


async def test_upload_index_and_search(services: Services, unique: str) -> None:
    files = services.files
    paris = await files.upload(P, f"paris-{unique}.txt", "assistants", PARIS)
    tokyo = await files.upload(P, f"tokyo-{unique}.txt", "assistants", TOKYO)
    store = await files.create_vector_store(
        P, name=f"cities-{unique}", file_ids=[paris.id], metadata={"k": "v"}
    )
    assert store.file_counts.completed == 1 and store.metadata == {"k": "v"}
    attached = await files.attach_file(
        P, store.id, tokyo.id, attributes={"country": "jp"}, chunking_strategy={"type": "auto"}
    )
    assert attached.status == "completed" and attached.attributes == {"country": "jp"}

    found = await files.search(P, store.id, ["  ", "capital of Japan"])
    assert found.queries == ["capital of Japan"]
    assert found.hits[0].file_id == tokyo.id and 0 < found.hits[0].score <= 1
    only_jp = await files.search(
        P, store.id, "capital", filters={"type": "eq", "key": "country", "value": "jp"}
    )
    assert [h.file_id for h in only_jp.hits] == [tokyo.id]
    assert len((await files.search(P, store.id, "capital", max_num_results=1)).hits) == 1
    none = await files.search(P, store.id, "capital", ranking_options={"score_threshold": 1})
    assert all(h.score >= 1 for h in none.hits)

    updated = await files.update_attributes(P, store.id, tokyo.id, {"country": "JP"})
    assert updated.attributes == {"country": "JP"}
    assert await files.indexed_text(P, store.id, paris.id) == PARIS.decode()


async def test_batches(services: Services, unique: str) -> None:
    files = services.files
    a = await files.upload(P, f"a-{unique}.txt", "assistants", PARIS)
    b = await files.upload(P, f"b-{unique}.txt", "assistants", TOKYO)
    store = await files.create_vector_store(P, name=f"batch-{unique}")
    entries = batch_entries(
        None, [{"file_id": a.id, "attributes": {"n": 1}}, {"file_id": b.id}], None, None
    )
    batch = await files.create_batch(P, store.id, entries)
    assert batch.file_counts.completed == 2
    with pytest.raises(NotFound):  # a file that does not exist: nothing of the batch is added
        await files.create_batch(P, store.id, [FileEntry(a.id), FileEntry("file-nope")])
    with pytest.raises(NotFound):
        await files.create_batch(P, "vs_nope", [FileEntry(a.id)])


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ((None, None), "file_ids"),
        ((["f"], [{"file_id": "f"}]), "file_ids"),
        (([],), "file_ids"),
        ((None, [{"id": "f"}]), "files[0]"),
    ],
    ids=["neither", "both", "empty", "no-file-id"],
)
def test_a_bad_batch_names_the_field(args: tuple[object, ...], param: str) -> None:
    full = (*args, None)[:2]
    with pytest.raises(UserError) as caught:
        batch_entries(*full)  # type: ignore[arg-type]
    assert caught.value.param == param


def test_search_queries() -> None:
    assert search_queries("a") == ["a"]
    for bad in ("", ["  "], [1], ["q"] * 11):
        with pytest.raises(UserError) as caught:
            search_queries(bad)
        assert caught.value.param == "query"


async def test_refused_uploads_and_indexing(services: Services, unique: str) -> None:
    files = services.files
    with pytest.raises(PayloadTooLarge):
        await files.upload(P, "big.txt", "assistants", b"x" * 1001)
    with pytest.raises(UserError) as caught:
        await files.upload(P, "a.txt", "nonsense", b"x")
    assert caught.value.param == "purpose"
    f = await files.upload(P, f"ok-{unique}.txt", "assistants", PARIS)
    with pytest.raises(UserError) as caught:
        await files.create_vector_store(P, file_ids=[f.id], chunking_strategy={"type": "weird"})
    assert caught.value.param == "chunking_strategy"
    store = await files.create_vector_store(P, name=f"s-{unique}")
    with pytest.raises(UserError) as caught:
        await files.attach_file(P, store.id, f.id, attributes={"k": [1, 2]})
    assert caught.value.param is not None and caught.value.param.startswith("attributes")
    assert (await services.store.get_vector_store(P, store.id)).file_counts.total == 0
    with pytest.raises(UserError):
        await files.search(P, store.id, "x", max_num_results=0)
    with pytest.raises(NotFound):
        await files.search(P, "vs_nope", "x")

"""The openai SDK's files and vector stores APIs against a live cupola."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from live_server import LiveServer, make_settings, start_server

REFUNDS = b"""Refund policy. Cancelled bookings are refunded within 14 days.
Refund requests are handled by the billing team; attach your booking number."""
HOTEL = b"""The Sakura Hotel serves breakfast from 7 to 10 am.
The rooftop pool is open until midnight and towels are provided."""
FLIGHTS = b"""Flights to Tokyo leave every morning. Each passenger may check two bags;
cabin baggage must fit the overhead bin."""


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)


def upload(client: openai.OpenAI, name: str, content: bytes) -> str:
    return client.files.create(file=(name, content), purpose="assistants").id


def test_files_lifecycle(client: openai.OpenAI, unique: str) -> None:
    created = client.files.create(file=(f"notes-{unique}.txt", b"hello files"), purpose="user_data")
    assert created.id.startswith("file-") and created.object == "file"
    assert created.bytes == 11 and created.filename == f"notes-{unique}.txt"
    assert created.purpose == "user_data" and created.status == "processed"

    assert client.files.retrieve(created.id).created_at == created.created_at
    assert client.files.content(created.id).content == b"hello files"

    second = client.files.create(file=(f"more-{unique}.md", b"# more"), purpose="user_data")
    listed = [f.id for f in client.files.list(purpose="user_data")]
    assert listed.index(second.id) < listed.index(created.id)  # newest first
    oldest_first = [f.id for f in client.files.list(purpose="user_data", order="asc")]
    assert oldest_first.index(created.id) < oldest_first.index(second.id)
    page = client.files.list(purpose="user_data", limit=1)
    assert len(page.data) == 1 and page.has_more
    assert all(f.purpose == "user_data" for f in client.files.list(purpose="user_data"))
    assert created.id not in [f.id for f in client.files.list(purpose="batch")]

    deleted = client.files.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(created.id)


def test_vector_store_search_finds_the_right_file(client: openai.OpenAI, unique: str) -> None:
    ids = [
        upload(client, "refunds.txt", REFUNDS),
        upload(client, "hotel.md", HOTEL),
        upload(client, "flights.txt", FLIGHTS),
    ]
    store = client.vector_stores.create(name=f"travel-{unique}", file_ids=ids, metadata={"k": "v"})
    assert store.id.startswith("vs_") and store.object == "vector_store"
    assert store.status == "completed" and store.metadata == {"k": "v"}
    assert store.file_counts.completed == 3 and store.file_counts.total == 3
    assert store.usage_bytes == len(REFUNDS) + len(HOTEL) + len(FLIGHTS)

    results = client.vector_stores.search(store.id, query="how long does a refund take?")
    first = results.data[0]
    assert first.file_id == ids[0] and first.filename == "refunds.txt"
    assert 0 < first.score <= 1
    assert first.content[0].type == "text" and "14 days" in first.content[0].text
    assert all(r.score <= first.score for r in results.data)

    pool = client.vector_stores.search(store.id, query=["swimming", "rooftop pool"])
    assert [r.filename for r in pool.data] == ["hotel.md"]
    assert client.vector_stores.search(store.id, query="zeppelin").data == []
    one = client.vector_stores.search(store.id, query="the bags booking", max_num_results=1)
    assert len(one.data) == 1


def test_vector_store_crud(client: openai.OpenAI, unique: str) -> None:
    store = client.vector_stores.create(name=f"crud-{unique}")
    assert store.file_counts.total == 0 and store.usage_bytes == 0
    renamed = client.vector_stores.update(store.id, name=f"renamed-{unique}", metadata={"a": "b"})
    assert renamed.name == f"renamed-{unique}" and renamed.metadata == {"a": "b"}
    assert client.vector_stores.retrieve(store.id).name == f"renamed-{unique}"
    other = client.vector_stores.create(name=f"other-{unique}")
    listed = [v.id for v in client.vector_stores.list(limit=100)]
    assert listed.index(other.id) < listed.index(store.id)
    assert len(client.vector_stores.list(limit=1).data) == 1

    deleted = client.vector_stores.delete(store.id)
    assert deleted.deleted and deleted.object == "vector_store.deleted"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.search(store.id, query="x")


def test_vector_store_files(client: openai.OpenAI, unique: str) -> None:
    store = client.vector_stores.create(name=f"files-{unique}")
    refunds = upload(client, "refunds.txt", REFUNDS)
    hotel = upload(client, "hotel.txt", HOTEL)
    attached = client.vector_stores.files.create_and_poll(
        refunds, vector_store_id=store.id, attributes={"team": "billing", "year": 2025}
    )
    assert attached.status == "completed" and attached.last_error is None
    assert attached.id == refunds and attached.vector_store_id == store.id
    assert attached.attributes == {"team": "billing", "year": 2025}
    client.vector_stores.files.create_and_poll(
        hotel, vector_store_id=store.id, attributes={"team": "hotel", "year": 2024}
    )

    listed = client.vector_stores.files.list(store.id)
    assert {f.id for f in listed} == {refunds, hotel}
    assert [f.id for f in client.vector_stores.files.list(store.id, filter="failed")] == []
    got = client.vector_stores.files.retrieve(hotel, vector_store_id=store.id)
    assert got.usage_bytes == len(HOTEL)
    content = client.vector_stores.files.content(hotel, vector_store_id=store.id)
    assert "rooftop pool" in "".join(c.text or "" for c in content)

    by_team = client.vector_stores.search(
        store.id, query="breakfast refund", filters={"type": "eq", "key": "team", "value": "hotel"}
    )
    assert [r.file_id for r in by_team.data] == [hotel]
    recent = client.vector_stores.search(
        store.id,
        query="breakfast refund",
        filters={
            "type": "and",
            "filters": [
                {"type": "gte", "key": "year", "value": 2025},
                {"type": "in", "key": "team", "value": ["billing", "ops"]},
            ],
        },
    )
    assert [r.file_id for r in recent.data] == [refunds]
    assert recent.data[0].attributes == {"team": "billing", "year": 2025}

    updated = client.vector_stores.files.update(
        hotel, vector_store_id=store.id, attributes={"team": "ops"}
    )
    assert updated.attributes == {"team": "ops"}

    removed = client.vector_stores.files.delete(hotel, vector_store_id=store.id)
    assert removed.deleted and removed.object == "vector_store.file.deleted"
    assert client.vector_stores.search(store.id, query="breakfast").data == []
    assert client.vector_stores.retrieve(store.id).file_counts.total == 1
    assert client.files.retrieve(hotel).id == hotel  # the file itself stays
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(hotel, vector_store_id=store.id)

    client.files.delete(refunds)  # deleting a file removes it from its stores
    assert client.vector_stores.retrieve(store.id).file_counts.total == 0
    assert client.vector_stores.search(store.id, query="refund").data == []


def test_file_batches_and_uploads(client: openai.OpenAI, unique: str) -> None:
    store = client.vector_stores.create(name=f"batch-{unique}")
    ids = [upload(client, "refunds.txt", REFUNDS), upload(client, "flights.txt", FLIGHTS)]
    batch = client.vector_stores.file_batches.create_and_poll(
        store.id, file_ids=ids, attributes={"source": "batch"}
    )
    assert batch.id.startswith("vsfb_") and batch.status == "completed"
    assert batch.file_counts.completed == 2 and batch.file_counts.total == 2
    assert client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id).id == (
        batch.id
    )
    in_batch = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert {f.id for f in in_batch} == set(ids)
    assert all(f.attributes == {"source": "batch"} for f in in_batch)

    uploaded = client.vector_stores.file_batches.upload_and_poll(
        store.id, files=[("hotel.md", HOTEL), ("scan.pdf", b"%PDF-1.7 ...")]
    )
    assert uploaded.file_counts.completed == 1 and uploaded.file_counts.failed == 1

    single = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=(f"extra-{unique}.txt", b"an extra note about visas")
    )
    assert single.status == "completed"
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.completed, counts.failed, counts.total) == (4, 1, 5)
    hits = client.vector_stores.search(store.id, query="visa")
    assert [r.file_id for r in hits.data] == [single.id]


def test_non_text_files_fail_indexing_with_a_clear_error(
    client: openai.OpenAI, unique: str
) -> None:
    store = client.vector_stores.create(name=f"bad-{unique}")
    image = upload(client, "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00binary")
    failed = client.vector_stores.files.create_and_poll(image, vector_store_id=store.id)
    assert failed.status == "failed" and failed.usage_bytes == 0
    assert failed.last_error is not None and failed.last_error.code == "unsupported_file"
    assert "photo.png" in failed.last_error.message and "text" in failed.last_error.message
    listed = client.vector_stores.files.list(store.id, filter="failed")
    assert [f.id for f in listed] == [image]
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.failed, counts.completed) == (1, 0)

    page = upload(
        client, "page.html", b"<p>Late <b>check-out</b> costs extra</p><script>x=1</script>"
    )
    client.vector_stores.files.create_and_poll(page, vector_store_id=store.id)
    [hit] = client.vector_stores.search(store.id, query="checkout check-out").data
    assert hit.content[0].text == "Late check-out costs extra"


def test_unknown_ids_are_404(client: openai.OpenAI, unique: str) -> None:
    store = client.vector_stores.create(name=f"404-{unique}")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.create(name="x", file_ids=["file-missing"])
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(vector_store_id=store.id, file_id="file-missing")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(vector_store_id="vs_missing", file_id="file-missing")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve("file-missing", vector_store_id=store.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.retrieve("vsfb_missing", vector_store_id=store.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.create(store.id, file_ids=["file-missing"])
    assert client.vector_stores.retrieve(store.id).file_counts.total == 0


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("search", {"query": ""}, "query"),
        ("search", {"query": "x", "max_num_results": 0}, "max_num_results"),
        ("search", {"query": "x", "max_num_results": 51}, "max_num_results"),
        ("search", {"query": "x", "filters": {"type": "like", "key": "a", "value": 1}}, None),
        ("search", {"query": "x", "ranking_options": {"score_threshold": 2}}, None),
        ("files", {"file_id": "f", "attributes": {"k": [1]}}, "attributes"),
        ("files", {"file_id": "f", "chunking_strategy": {"type": "x"}}, "chunking_strategy"),
        (
            "file_batches",
            {"files": [{"file_id": "a"}, {"file_id": "b", "attributes": "x"}]},
            "files[1].attributes",
        ),
        ("file_batches", {}, "file_ids"),
        ("file_batches", {"file_ids": ["a"], "files": [{"file_id": "a"}]}, "file_ids"),
    ],
)
def test_bad_vector_store_requests_are_400(
    client: openai.OpenAI, server: LiveServer, path: str, body: dict[str, object], param: str | None
) -> None:
    store = client.vector_stores.create(name="bad-input")
    r = httpx.post(f"{server.openai_url}/vector_stores/{store.id}/{path}", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param:
        assert error["param"] == param


def test_bad_uploads_are_400(server: LiveServer) -> None:
    url = f"{server.openai_url}/files"
    assert httpx.post(url, json={"purpose": "assistants"}).status_code == 400
    no_file = httpx.post(url, data={"purpose": "assistants"}, files={"other": ("a.txt", b"x")})
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    bad_purpose = httpx.post(url, data={"purpose": "nope"}, files={"file": ("a.txt", b"x")})
    assert bad_purpose.status_code == 400 and bad_purpose.json()["error"]["param"] == "purpose"
    truncated = httpx.post(
        url,
        content=b'--XYZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
        headers={"content-type": "multipart/form-data; boundary=XYZ"},
    )
    assert truncated.status_code == 400 and truncated.json()["error"]["code"] == "invalid_multipart"
    no_boundary = httpx.post(url, content=b"abc", headers={"content-type": "multipart/form-data"})
    assert no_boundary.status_code == 400


def test_multipart_names_and_the_v1_alias(server: LiveServer) -> None:
    r = httpx.post(
        f"{server.url}/v1/files",
        data={"purpose": "assistants"},
        files={"file": ('C:\\docs\\r\u00e9sum\u00e9 "final".txt', b"caf\xc3\xa9")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["filename"] == 'r\u00e9sum\u00e9 "final".txt'
    got = httpx.get(f"{server.openai_url}/files/{r.json()['id']}/content")
    assert got.content == b"caf\xc3\xa9" and got.headers["content-type"].startswith("text/plain")


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("small") / "cupola.db"
    live = start_server(make_settings(f"sqlite:///{path}", max_file_bytes=1024))
    yield live
    live.stop()


def test_oversized_files_are_413(small_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=small_server.openai_url, api_key="x", max_retries=0)
    assert client.files.create(file=("ok.txt", b"x" * 1024), purpose="assistants").bytes == 1024
    with pytest.raises(openai.APIStatusError) as info:
        client.files.create(file=("big.txt", b"x" * 1025), purpose="assistants")
    assert info.value.status_code == 413
    with pytest.raises(openai.APIStatusError) as huge:
        client.files.create(file=("huge.txt", b"x" * 200_000), purpose="assistants")
    assert huge.value.status_code == 413
    assert len(client.files.list().data) == 1

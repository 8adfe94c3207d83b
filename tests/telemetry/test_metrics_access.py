"""``/metrics`` on a server that needs keys: a reader key of the project may scrape it (at
the root and under the project), no key is a 401, a key of another project a 403; a run a
user's key makes is counted."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cupola.domain import Role
from live_server import LiveServer, make_settings, start_server


@pytest.fixture(scope="module")
def guarded(database_url: str) -> Iterator[LiveServer]:
    live = start_server(
        make_settings(database_url, auth={"required": "always", "key_cache_seconds": 0})
    )
    yield live
    live.stop()


def runs(text: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "cupola_runs_total" and s.labels["deployment"] == "echo"
    )


def test_a_reader_key_scrapes_metrics(guarded: LiveServer, unique: str) -> None:
    store = guarded.services.store
    _r, reader = store.create_key_sync(f"prom-{unique}", role=Role.READER)
    _u, user = store.create_key_sync(f"user-{unique}", role=Role.USER)
    _o, other = store.create_key_sync(f"other-{unique}", project="elsewhere", role=Role.ADMIN)
    urls = (f"{guarded.url}/metrics", f"{guarded.project_url}/metrics")
    for url in urls:
        assert httpx.get(url).status_code == 401
        refused = httpx.get(url, headers={"Authorization": f"Bearer {other}"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "wrong_project"
    before = runs(httpx.get(urls[0], headers={"Authorization": f"Bearer {reader}"}).text)
    r = httpx.post(
        f"{guarded.openai_url}/responses",
        json={"model": "echo", "input": "count me"},
        headers={"Authorization": f"Bearer {user}"},
    )
    assert r.status_code == 200, r.text
    for url in urls:
        scraped = httpx.get(url, headers={"Authorization": f"Bearer {reader}"})
        assert scraped.status_code == 200, scraped.text
        assert scraped.headers["content-type"].startswith("text/plain")
        assert runs(scraped.text) == before + 1

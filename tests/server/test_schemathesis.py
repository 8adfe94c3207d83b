"""The OpenAPI document is true: schemathesis drives a live server with requests generated
from /openapi.json, operation by operation, and checks every answer against it.

Bounded and reproducible: a fixed number of examples per operation, derandomized (the same
requests every run), no shrinking, each request under a timeout; the whole run takes one to
three minutes on 2 cores. It checks that no request answers 5xx and that every answer
conforms to the document: its status code is one the operation declares, its content type
is declared, and its body validates against the declared schema (the OpenAI error shape for
a 4xx). Requests are valid and invalid ones alike (schemathesis's positive and negative
modes).

Ids drawn at random name nothing, so before each operation the test creates one object of
each kind (a conversation with an item, a stored response, a file in a vector store, a file
batch, an agent, a toolbox, a connection), and half of the generated requests name those
(and a deployment as ``model``): their 200 answers are checked against the document too.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from live_server import LiveServer

MAX_EXAMPLES = 16
"""Generated requests per operation."""
REQUEST_TIMEOUT = 30.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
MODEL = "echo"
"""The deployment generated run requests name half of the time."""


@pytest.fixture(scope="session")
def api_schema(server: LiveServer) -> Iterator[BaseSchema]:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    schema.config.update(base_url=server.url, request_timeout=REQUEST_TIMEOUT)
    schema.config.generation.update(
        modes=["positive", "negative"],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
        # ISSUE8 "What to build" 5 (finding 4): a NUL byte in a text field answers 500 on
        # PostgreSQL; fixed apart from this change. Generated strings leave NUL out until then.
        allow_x00=False,
    )
    yield schema


def seed(http: httpx.Client) -> dict[str, str]:
    """One object of each kind; the values of the path parameters that name them."""

    def ok(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    conv_id = ok(http.post("conversations", json={"items": [{"role": "user", "content": "hi"}]}))[
        "id"
    ]
    item_id = ok(http.get(f"conversations/{conv_id}/items"))["data"][0]["id"]
    response_id = ok(http.post("responses", json={"model": MODEL, "input": "hello"}))["id"]
    upload = {"file": ("notes.txt", io.BytesIO(b"Refunds within 30 days."))}
    file_id = ok(http.post("files", files=upload, data={"purpose": "assistants"}))["id"]
    store_id = ok(http.post("vector_stores", json={"file_ids": [file_id]}))["id"]
    batch = ok(http.post(f"vector_stores/{store_id}/file_batches", json={"file_ids": [file_id]}))
    project = str(http.base_url).rsplit("/openai/v1", 1)[0]
    agent = ok(
        http.post(f"{project}/agents/helper/versions", json={"definition": {"model": MODEL}})
    )
    tools = [{"type": "file_search", "vector_store_ids": [store_id]}]
    ok(http.post(f"{project}/toolboxes/kit/versions", json={"tools": tools}))
    connection = {
        "type": "CustomKeys",
        "target": "http://127.0.0.1:9",
        "credentials": {"type": "None"},
    }
    ok(http.put(f"{project}/connections/conn", json=connection))
    return {
        "conversation_id": conv_id,
        "item_id": item_id,
        "response_id": response_id,
        "file_id": file_id,
        "vector_store_id": store_id,
        "batch_id": batch["id"],
        "agent_name": agent["name"],
        "agent_version": agent["version"],
        "model_id": MODEL,
        "version": "1",
    }


def _named(path: str, known: dict[str, str]) -> dict[str, str]:
    """The seeded values of ``path``'s parameters (``name`` depends on the resource)."""
    values = dict(known)
    for resource, name in (
        ("/deployments/", MODEL),
        ("/toolboxes/", "kit"),
        ("/connections/", "conn"),
    ):
        if resource in path:
            values["name"] = name
    return {k: v for k, v in values.items() if "{" + k + "}" in path}


def _aim(case: schemathesis.Case, known: dict[str, str], aimed: bool) -> schemathesis.Case:
    """Point a generated case at the seeded objects and a real deployment."""
    if not aimed:
        return case
    case.path_parameters = {**(case.path_parameters or {}), **_named(case.path, known)}
    if isinstance(case.body, dict) and ("model" in case.body or case.method == "POST"):
        if case.path.endswith(("/responses", "/chat/completions", "/messages", "/count_tokens")):
            case.body["model"] = MODEL
    return case


def _failures(
    operation: APIOperation, project: str, known: dict[str, str], statuses: Counter[int]
) -> list[str]:
    """Run one operation's generated cases; the failures found, one entry each."""
    # the project the server serves: any other answers 404, and would leave nothing else of
    # the /api/projects/{project}/... operations exercised
    fixed = {"project": project} if "{project}" in operation.path else None
    generated = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed),
    )
    cases = st.builds(lambda c, aimed: _aim(c, known, aimed), generated, st.booleans())
    found: list[str] = []

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the run stays bounded
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        try:
            response = case.call_and_validate(checks=CHECKS, timeout=REQUEST_TIMEOUT)
            statuses[response.status_code] += 1
        except (Failure, FailureGroup) as exc:
            lines = " | ".join(str(exc).strip().splitlines()[:8])
            found.append(f"{operation.label}: {lines}\n    {case.as_curl_command()}")

    run()
    return found


def test_the_server_answers_as_its_document_says(
    server: LiveServer, api_schema: BaseSchema
) -> None:
    failures: list[str] = []
    operations = 0
    statuses: Counter[int] = Counter()
    known: dict[str, str] = {}
    with httpx.Client(base_url=server.openai_url + "/", timeout=30) as http:
        for result in api_schema.get_all_operations():
            operation = result.ok()
            operations += 1
            if not known:
                known = seed(http)
            failures += _failures(operation, server.settings.project, known, statuses)
            if operation.method.upper() == "DELETE":
                known = {}  # it may have deleted them: the next operation gets new ones
    assert operations > 100
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures[:30])
    assert not [s for s in statuses if s >= 500]
    # the run reached real objects, not only 404s
    assert statuses[200] > operations, statuses
    print(f"schemathesis: {operations} operations, statuses {dict(sorted(statuses.items()))}")


def test_the_run_is_seeded_with_real_objects(server: LiveServer) -> None:
    with httpx.Client(base_url=server.openai_url + "/", timeout=30) as http:
        known = seed(http)
        for path in (
            f"conversations/{known['conversation_id']}/items/{known['item_id']}",
            f"responses/{known['response_id']}",
            f"vector_stores/{known['vector_store_id']}/files/{known['file_id']}",
            f"vector_stores/{known['vector_store_id']}/file_batches/{known['batch_id']}",
        ):
            assert http.get(path).status_code == 200, path
        project = server.project_url
        for path in ("agents/helper/versions/1", "toolboxes/kit", "connections/conn"):
            assert http.get(f"{project}/{path}").status_code == 200, path


def test_listing_agents_of_another_kind_still_checks_the_request(server: LiveServer) -> None:
    """Found by the run above: ``?kind=hosted`` answered an empty 200 before the project and
    ``limit`` were checked."""
    base = f"{server.url}/api/projects"
    assert httpx.get(f"{base}/nowhere/agents", params={"kind": "hosted"}).status_code == 404
    r = httpx.get(f"{server.project_url}/agents", params={"kind": "hosted", "limit": "true"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
    r = httpx.get(f"{server.project_url}/agents", params={"kind": "hosted"})
    assert r.status_code == 200 and r.json()["data"] == []


@pytest.mark.parametrize(
    "path",
    [
        "agents/helper/versions/²",
        "agents/helper/versions?after=helper:²",
        "toolboxes/kit/versions/²",
        "toolboxes/kit/versions?after=²",
    ],
)
def test_a_version_in_other_digits_is_refused(server: LiveServer, path: str) -> None:
    """Found probing the run's path parameters: ``"²".isdigit()`` is true and ``int("²")``
    raises, which answered 500."""
    r = httpx.get(f"{server.project_url}/{path}")
    assert r.status_code == 400, r.text
    assert "version" in r.json()["error"]["message"]

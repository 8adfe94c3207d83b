"""The OpenAPI document is true: schemathesis drives a live server with requests generated
from /openapi.json, operation by operation, and checks every answer against it.

Bounded and reproducible: a fixed number of examples per operation, derandomized, each
request under a timeout; the whole run takes a few minutes on 2 cores. It checks that no
request answers 5xx and that every answer conforms to the document: its status code is one
the operation declares, its content type is declared, and its body validates against the
declared schema (the OpenAI error shape for a 4xx).
"""

from __future__ import annotations

from collections.abc import Iterator

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
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from live_server import LiveServer

MAX_EXAMPLES = 12
"""Generated requests per operation (besides the document's own examples)."""
REQUEST_TIMEOUT = 30.0
STATUSES: dict = {}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="session")
def api_schema(server: LiveServer) -> Iterator[BaseSchema]:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    schema.config.update(
        base_url=server.url,
        request_timeout=REQUEST_TIMEOUT,
    )
    schema.config.generation.update(
        modes=["positive", "negative"],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
        # ISSUE8 point 5 (finding 4): a NUL byte in a text field answers 500 on PostgreSQL;
        # fixed apart from this change. Generated strings leave NUL out until then.
        allow_x00=False,
    )
    yield schema


def _failures(operation: APIOperation, project: str) -> list[str]:
    """Run one operation's generated cases; the failures found, one line each."""
    # the project the server serves: any other answers 404, and would leave nothing else of
    # the /api/projects/{project}/... operations exercised
    fixed = {"project": project} if "{project}" in operation.path else None
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed),
    )
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
            STATUSES[(operation.label, response.status_code)] = STATUSES.get((operation.label, response.status_code), 0) + 1
        except (Failure, FailureGroup) as exc:
            found.append(f"{operation.label}: {_first_lines(exc)}\n    {case.as_curl_command()}")

    run()
    return found


def _first_lines(exc: BaseException) -> str:
    return " | ".join(str(exc).strip().splitlines()[:6])


def test_the_server_answers_as_its_document_says(
    server: LiveServer, api_schema: BaseSchema
) -> None:
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        failures += _failures(operation, server.settings.project)
    import json; open("/tmp/x/statuses.json","w").write(json.dumps(sorted([list(k)+[v] for k,v in STATUSES.items()])))
    assert operations > 100
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])

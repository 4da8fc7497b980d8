"""Every endpoint of the API fuzzed from its own OpenAPI schema (`/openapi.json`, as served) by
schemathesis: with the right token and without one, no answer is a 5xx, every answer is one the
schema documents (status code, content type, body schema, headers), and without a token every
endpoint that needs one answers 401, whatever else the request holds.

The API is the real one (api.main.create_app), step-up set up, on a loopback port against the
session's dev server. Hypothesis drives the requests from a thread (its tests are synchronous)
while the API answers on the test's event loop. Derandomized and bounded (OPENAPI_EXAMPLES per
endpoint and token, 15 by default) so CI sees the same cases each run; raise it locally for a
longer hunt.
Slack's interactivity endpoint is only tried unsigned here (its signature covers a body the
schema does not describe), and the webhooks' schema describes no body: test_hostile_input.py
fuzzes their bodies."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from tests.harness import API_HEADERS, API_WRITE_HEADERS, WEBHOOK_HEADERS, make_settings
from tests.servers import ServedApp, free_port

EXAMPLES = int(os.environ.get("OPENAPI_EXAMPLES", "15"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
TOKENS = {  # security scheme → the header that satisfies it (tests.harness.make_settings)
    "WebhookToken": WEBHOOK_HEADERS,
    "ApiToken": API_HEADERS,
    "ApiWriteToken": API_WRITE_HEADERS,
}


def token_for(definition: dict[str, Any]) -> dict[str, str] | None:
    """The Authorization header an operation accepts (None: it needs none we can give)."""
    for requirement in definition.get("security", []):
        for scheme in requirement:
            if scheme in TOKENS:
                return TOKENS[scheme]
    return None


def fuzz_one(operation: Any, base_url: str, headers: dict[str, str] | None, refused: bool) -> int:
    """Send `operation`'s generated cases (hypothesis shrinks a failure to its simplest case and
    raises it), each refused with a 401 when `refused`; the number of requests sent."""
    sent = 0

    @FUZZ
    @given(case=operation.as_strategy())
    def check(case: Case) -> None:
        nonlocal sent
        sent += 1
        response = case.call_and_validate(
            base_url=base_url, headers=headers, checks=CHECKS, timeout=10
        )
        if refused:
            assert response.status_code == 401, (case.as_curl_command(), response.text[:300])

    check()
    return sent


def fuzz(schema: Any, base_url: str, authorized: bool) -> tuple[dict[str, int], list[str]]:
    """Every operation's cases: requests sent per operation, and each operation's failure."""
    sent: dict[str, int] = {}
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        secured = bool(operation.definition.raw.get("security"))
        headers = token_for(operation.definition.raw) if authorized else None
        if authorized and headers is None and secured:
            continue  # signed (Slack): nothing to add; the unauthorized pass tries it
        try:
            refused = secured and not authorized
            sent[operation.label] = fuzz_one(operation, base_url, headers, refused)
        except Exception as exc:  # every operation's failure, not only the first
            sent[operation.label] = -1
            failures.append(f"{operation.label}: {exc}")
    return sent, failures


@pytest.fixture
async def api_url(dev_env: WorkflowEnvironment, slack_api_url: str) -> AsyncIterator[str]:
    """The real API, step-up set up (its POWERTRIP_PUBLIC_URL, a secure context for passkeys),
    against the session's dev server; its base URL."""
    port = free_port()
    settings = make_settings(
        slack_api_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        public_url=f"http://localhost:{port}",
    )
    async with ServedApp(create_app(settings), port=port) as served:
        yield served.url


@pytest.mark.parametrize("authorized", [True, False], ids=["with-token", "without-token"])
async def test_every_endpoint_answers_fuzzed_requests_as_its_schema_says_and_never_5xx(
    api_url: str, authorized: bool
) -> None:
    async with httpx.AsyncClient() as http:
        spec = (await http.get(f"{api_url}/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(spec)
    sent, failures = await asyncio.to_thread(fuzz, schema, api_url, authorized)
    assert not failures, "\n\n".join(failures)
    assert len(sent) >= 20, sent  # every endpoint was tried
    print(f"FIGURES {'with' if authorized else 'without'} token: {sum(sent.values())} requests")

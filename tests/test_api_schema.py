"""Every answer the API gives is one its OpenAPI schema documents, body included: clients
generated from `/openapi.json` must be able to read its errors. Found by the fault suite's
schemathesis run (tests/faults/test_openapi_fuzz.py): a search the record cannot make (a control
character in `actor`) answered 422 `{"detail": "<why>"}`, where the schema promised FastAPI's
list of invalid fields."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from powertrip.settings import Settings
from tests.harness import API_HEADERS, make_settings
from tests.servers import ServedApp, free_port


def conforms(spec: dict[str, Any], method: str, path: str, response: httpx.Response) -> None:
    """The answer's status is one `spec` documents for the operation, and its body matches."""
    documented = spec["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in documented, (path, response.status_code, documented)
    schemathesis.openapi.from_dict(spec)[path][method].validate_response(response)


UNSEARCHABLE = "alice\x1a"  # a control character: Temporal visibility cannot search for it


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/v1/expectations", {"actor": UNSEARCHABLE}),
        ("GET", "/v1/events", {"actor": UNSEARCHABLE}),
        ("GET", "/v1/events", {"since": "2026-12-01T10:00:00Z", "until": "2026-12-01T09:00:00Z"}),
        ("GET", "/v1/approvals/match", {"host": "bastion", "user": UNSEARCHABLE}),
        ("GET", "/v1/events", {"status": "maybe"}),  # FastAPI's own 422: the list of fields
    ],
)
async def test_a_question_the_record_cannot_answer_is_a_documented_422(
    served: tuple[httpx.AsyncClient, Settings], method: str, path: str, params: dict[str, Any]
) -> None:
    http, _ = served
    spec = (await http.get("/openapi.json")).json()
    documented = spec["paths"][path][method.lower()]["responses"]["422"]
    assert "content" in documented  # the body is described, not only the status
    response = await http.request(method, path, params=params, headers=API_HEADERS)
    assert response.status_code == 422, response.text
    conforms(spec, method, path, response)


async def test_step_up_refusals_and_a_missing_public_url_are_documented(
    dev_env: WorkflowEnvironment,
    served: tuple[httpx.AsyncClient, Settings],
    slack_api_url: str,
) -> None:
    """An unknown link is refused (404, the page or JSON saying why); an API without
    POWERTRIP_PUBLIC_URL says step-up is not set up (503). Both were undocumented."""
    http, _ = served
    spec = (await http.get("/openapi.json")).json()
    unconfigured = await http.get("/verify/no-such-link")
    assert unconfigured.status_code == 503
    conforms(spec, "GET", "/verify/{token}", unconfigured)

    port = free_port()
    settings = make_settings(
        slack_api_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        public_url=f"http://localhost:{port}",
    )
    async with ServedApp(create_app(settings), port=port) as api, httpx.AsyncClient() as client:
        for method, path in [
            ("GET", "/verify/{token}"),
            ("POST", "/verify/{token}/options"),
            ("GET", "/passkeys/register/{token}"),
            ("POST", "/passkeys/register/{token}/options"),
        ]:
            url = api.url + path.format(token="no-such-link")
            response = await client.request(method, url)
            assert response.status_code == 404, (path, response.text[:200])
            conforms(spec, method, path, response)

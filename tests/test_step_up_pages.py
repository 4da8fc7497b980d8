"""The step-up pages over HTTP (no browser): what each link problem tells a person, escaping of
everything that came from a log line, the headers that keep the link secret, and a clear answer
when step-up is not configured. Against the real API, worker and time-skipping server."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from powertrip.logs import RedactQuerySecrets
from powertrip.services.stepup import issue_registration_link, issue_step_up_link
from powertrip.settings import Settings, SettingsError
from tests.harness import (
    add_passkey,
    api_client,
    make_event,
    make_settings,
    passkey,
    running_worker,
)
from tests.servers import ServedApp, free_port


@dataclass
class Served:
    client: Client
    settings: Settings
    http: httpx.AsyncClient


@pytest.fixture
async def served_pages(
    time_skipping_env: WorkflowEnvironment, slack_api_url: str
) -> AsyncIterator[Served]:
    port = free_port()
    settings = make_settings(
        slack_api_url,
        temporal_address=time_skipping_env.client.service_client.config.target_host,
        public_url=f"http://localhost:{port}",
    )
    async with (
        ServedApp(create_app(settings), port=port) as api,
        running_worker(time_skipping_env.client, settings),
        httpx.AsyncClient(base_url=api.url, timeout=15) as http,
    ):
        yield Served(time_skipping_env.client, settings, http)


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


async def test_every_value_from_the_log_line_is_escaped_and_visible(served_pages: Served) -> None:
    # A user who registered a passkey, and an event whose fields an attacker wrote.
    await issue_registration_link(served_pages.client, served_pages.settings, user="U0ALICE")
    event = make_event(
        actor="\u202eecila",
        host="<script>alert(1)</script>\nApproved by sec",
        address='"><img src=x onerror=alert(2)>',
    )
    issued = await issue_step_up_link(
        served_pages.client, served_pages.settings, user="U0ALICE", event=event
    )
    page = await served_pages.http.get(_path(issued.url))
    # No passkey yet: the page says how to register instead of showing the event.
    assert page.status_code == 409
    assert "/powertrip passkey" in page.text and "<script>alert" not in page.text

    # With a passkey registered the summary is shown: escaped, controls made visible.
    await add_passkey(served_pages.client, served_pages.settings, passkey(1))
    page = await served_pages.http.get(_path(issued.url))
    assert page.status_code == 200
    text = page.text
    assert "<script>alert" not in text and "<img" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\u000aApproved by sec" in text
    assert "\\u202eecila" in text and "\u202e" not in text
    assert "non-ASCII name: check each letter" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in text


async def test_pages_keep_the_link_secret_and_load_nothing_from_elsewhere(
    served_pages: Served,
) -> None:
    issued = await issue_registration_link(
        served_pages.client, served_pages.settings, user="U0BOB", user_name="bob"
    )
    page = await served_pages.http.get(_path(issued.url))
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert 'src="/passkeys/static/passkeys.js"' in page.text
    assert "http" not in page.text.split("<body>", 1)[1]  # no absolute URL anywhere in the body
    for name, kind in [("passkeys.js", "text/javascript"), ("passkeys.css", "text/css")]:
        asset = await served_pages.http.get(f"/passkeys/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
    assert (await served_pages.http.get("/passkeys/static/..%2fpasskeys.py")).status_code == 404


async def test_each_link_problem_has_its_own_page(served_pages: Served) -> None:
    http = served_pages.http
    unknown = await http.get(f"/verify/U0ALICE.{'A' * 43}")
    assert unknown.status_code == 404 and "This link is not valid" in unknown.text
    garbage = await http.get("/verify/%3Cscript%3E")
    assert garbage.status_code == 404 and "<script>" not in garbage.text

    registration = await issue_registration_link(
        served_pages.client, served_pages.settings, user="U0ALICE"
    )
    token = registration.url.rsplit("/", 1)[1]
    wrong = await http.get(f"/verify/{token}")
    assert wrong.status_code == 404 and "for something else" in wrong.text
    options = await http.post(f"/verify/{token}/options")
    assert options.status_code == 404 and options.json()["refusal"] == "link_wrong_purpose"

    step_up = await issue_step_up_link(
        served_pages.client, served_pages.settings, user="U0ALICE", event=make_event()
    )
    no_passkey = await http.post(_path(step_up.url) + "/options")
    assert no_passkey.status_code == 409
    assert no_passkey.json()["refusal"] == "no_passkey"
    assert "/powertrip passkey" in no_passkey.json()["message"]

    not_json = await http.post(_path(step_up.url), content=b"{")
    assert not_json.status_code == 400
    too_big = await http.post(_path(step_up.url), content=b"x" * 70_000)
    assert too_big.status_code == 413


async def test_without_a_public_url_step_up_says_what_to_set(
    time_skipping_env: WorkflowEnvironment, slack_api_url: str
) -> None:
    settings = make_settings(
        slack_api_url, temporal_address=time_skipping_env.client.service_client.config.target_host
    )
    async with api_client(settings) as http:
        page = await http.get(f"/verify/U0ALICE.{'A' * 43}")
    assert page.status_code == 503
    assert "POWERTRIP_PUBLIC_URL" in page.json()["detail"]
    with pytest.raises(SettingsError, match="POWERTRIP_PUBLIC_URL"):
        await issue_step_up_link(
            time_skipping_env.client, settings, user="U0ALICE", event=make_event()
        )


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://powertrip.example.com/", True),
        ("http://localhost:8000", True),
        ("http://127.0.0.1:8000", True),
        ("http://powertrip.example.com", False),  # browsers refuse WebAuthn there
        ("https://powertrip.example.com/?x=1", False),
        ("ftp://powertrip.example.com", False),
    ],
)
def test_the_public_url_must_be_a_secure_origin(url: str, ok: bool) -> None:
    if ok:
        assert Settings(public_url=url).public_url == url.rstrip("/")
    else:
        with pytest.raises(ValueError, match="public_url"):
            Settings(public_url=url)


def test_access_logs_keep_whose_link_but_not_its_secret() -> None:
    secret = uuid.uuid4().hex + "abcdefghijk"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1", "GET", f"/verify/U0ALICE.{secret}", "1.1", 200),
        None,
    )
    RedactQuerySecrets().filter(record)
    line = record.getMessage()
    assert secret not in line and "/verify/U0ALICE.[redacted]" in line

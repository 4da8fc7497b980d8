"""Reviews are paced per source (issue 10, section 6): records that cannot be read are reviewed
like unrecognised ones (issue 11), paced the same way; failed logins are counted, not reviewed
(issue 17). The flood of 300 shapes in one request is in the fault suite
(tests/faults/test_record_flood.py), which uses this module's `stack` and `posts`."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY
from temporalio.testing import WorkflowEnvironment

from powertrip.config import config_from_mapping
from powertrip.sandbox.fake_slack import FakeSlack, SlackMessage
from powertrip.settings import Settings
from tests.harness import (
    CONFIG_YAML,
    WEBHOOK_HEADERS,
    api_client,
    eventually,
    running_worker,
    settings_with_config,
)
from tests.servers import SECURITY_CHANNEL

PACED = {"reviews_before_digest": 3, "review_digest_every": "10s"}


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment, slack_api_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    data = {**yaml.safe_load(CONFIG_YAML), **PACED, "rule_packs": ["sshd"]}
    settings = settings_with_config(dev_env, slack_api_url, tmp_path, yaml.safe_dump(data))
    config = config_from_mapping(data, tmp_path, "paced")
    async with api_client(settings) as http, running_worker(dev_env.client, settings, config):
        yield http, settings


def posts(fake: FakeSlack, marker: str) -> list[SlackMessage]:
    return [
        m
        for m in fake.messages.values()
        if m.channel == SECURITY_CHANNEL and marker in json.dumps(m.blocks)
    ]


async def test_invalid_records_are_reviewed_and_failed_logins_are_counted_not_reviewed(
    stack: tuple[httpx.AsyncClient, Settings], fake_slack: FakeSlack
) -> None:
    http, _ = stack
    marker = f"m{uuid.uuid4().hex[:8]}"
    invalid = {"id": marker, "host": {"no": "name"}, "message": "x"}
    attempts = [
        {
            "host": "bastion",
            "program": "sshd",
            "message": f"Failed password for invalid user {name} from 203.0.113.9 port 2 ssh2",
        }
        for name in ("admin", "oracle", "test", "ubuntu", marker)
    ]
    counted = {"source": "json", "rule": "sshd-failed-login", "outcome": "non_event"}
    before = REGISTRY.get_sample_value("powertrip_events_total", counted) or 0
    response = await http.post("/webhooks/json", json=[invalid, *attempts], headers=WEBHOOK_HEADERS)
    assert response.status_code == 202, response.text
    first, *failures = response.json()["results"]
    assert first["status"] == "invalid" and "host" in first["reason"]
    assert first["review"] == "requested"
    assert [r["status"] for r in failures] == ["non_event"] * 5
    assert all(r["rule_id"] == "sshd-failed-login" and r["review"] is None for r in failures)
    assert REGISTRY.get_sample_value("powertrip_events_total", counted) == before + 5

    [review] = await eventually(lambda: posts(fake_slack, marker), within=30)
    assert "Invalid json record needs review" in review.text
    assert "could not be read" in json.dumps(review.blocks)
    # A brute-force run posts nothing: not one review per guessed user name.
    assert not any("Failed password" in json.dumps(m.blocks) for m in posts(fake_slack, marker))


def test_shapes_mask_user_names() -> None:
    from powertrip.models import RawEvent
    from powertrip.unrecognised import message_shape

    def shape(message: str) -> str:
        return message_shape(RawEvent(source="t", provider_id="1", program="x", message=message))

    guesses = [
        f"Failed password for invalid user {name} from 203.0.113.9 port 22 ssh2"
        for name in ("admin", "oracle", "postgres")
    ]
    assert len({shape(g) for g in guesses}) == 1
    sessions = [f"session opened for user {name} by (uid=0)" for name in ("alice", "bob")]
    assert len({shape(s) for s in sessions}) == 1
    keyed = [f"logname= uid=0 euid=0 tty=ssh ruser={n} rhost=1.2.3.4  user={n}" for n in "ab"]
    assert len({shape(k) for k in keyed}) == 1
    # Where every auth program puts a name: one shape for all names, and no name in it.
    wordings = [
        "FAILED LOGIN 1 FROM tty1 FOR {}, Authentication failure",
        "FAILED SU (to root) {} on pts/0",
        "BAD SU {} to root on /dev/ttyp0",
        "BAD SU from {} to root at /dev/pts/1",
        "   {} : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/{} ; USER=root ; COMMAND=/bin/bash",
        "{} : 3 incorrect password attempts ; PWD=/srv/{} ; USER=root ; COMMAND=/bin/id",
        "- pts/0 {}:root",
        "{}: Error executing command as another user: Not authorized [USER=root] "
        "[TTY=/dev/pts/0] [CWD=/home/{}] [COMMAND=/usr/bin/id]",
        "failed auth for {}",
        "{} to www on /dev/ttyp0",
    ]
    for wording in wordings:
        shapes = {shape(wording.format(name, name)) for name in ("mallory", "trudy")}
        assert len(shapes) == 1, (wording, shapes)
        assert not any(name in shape for shape in shapes for name in ("mallory", "trudy"))
    assert "NOT in sudoers" in shape(wordings[4].format("mallory", "mallory"))
    console = RawEvent(
        source="t",
        provider_id="1",
        id_namespace="cloudtrail",
        program="signin.amazonaws.com",
        message="ConsoleLogin alice",
        fields={"eventName": "ConsoleLogin", "errorCode": "Failed authentication"},
    )
    assert message_shape(console) == "signin.amazonaws.com: ConsoleLogin Failed authentication"

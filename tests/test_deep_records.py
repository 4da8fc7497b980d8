"""One record nested 300 levels deep is that record's `invalid`, on every route and in the
backfill: never a 500 for its batch, which a sender would retry forever (issue 10, section 6)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from powertrip.models import MAX_FIELD_DEPTH
from powertrip.sources.cloudwatch import encode_awslogs
from powertrip.sources.files import records
from tests import aws as sources
from tests.aws import TOPIC, Served, bearer, serving
from tests.harness import CONFIG_YAML, ssh_line


def deep(levels: int = 300) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"a": value}
    return value


def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def served(
    dev_env: WorkflowEnvironment, slack_api_url: str, tmp_path: Path
) -> AsyncIterator[Served]:
    config = CONFIG_YAML + "rule_packs: [sshd, cloudtrail]\n"
    trusted = {"cloudtrail_sns_topic_arns": [TOPIC], "cloudtrail_log_groups": ["trail"]}
    async with serving(dev_env, slack_api_url, tmp_path, config, **trusted) as served:
        yield served


def good_line() -> str:
    return f"Nov 27 01:02:03 web-1 sshd[{uuid.uuid4().int % 90000}]: {ssh_line(f'u{unique()}')}"


def json_batch() -> tuple[str, Any]:
    good = {"id": unique(), "message": good_line()}
    return "/webhooks/json", [{"id": unique(), "message": "x", "deep": deep()}, good]


def ndjson_batch() -> tuple[str, Any]:
    deep_line = json.dumps({"id": unique(), "message": "x", "deep": deep()})
    good = json.dumps({"id": unique(), "message": good_line()})
    return "/webhooks/json", f"{deep_line}\n{good}\n"


def papertrail_batch() -> tuple[str, Any]:
    def event(**more: Any) -> dict[str, Any]:
        return {"id": unique(), "hostname": "web-1", "program": "sshd", **more}

    bad = event(message=ssh_line("alice"), deep=deep())
    return "/webhooks/papertrail", {"events": [bad, event(message=ssh_line(f"u{unique()}"))]}


def cloudwatch_batch() -> tuple[str, Any]:
    deep_json = json.dumps({"message": "x", "deep": deep()})
    batch = sources.subscription(sources.log_event(deep_json), sources.log_event(good_line()))
    return "/webhooks/cloudwatch", encode_awslogs(batch)


def eventbridge_batch() -> tuple[str, Any]:
    bad = sources.cloudtrail_login(str(uuid.uuid4()), "alice")
    bad["detail"]["requestParameters"] = deep()
    return "/webhooks/eventbridge", [
        bad,
        sources.cloudtrail_login(str(uuid.uuid4()), f"u{unique()}"),
    ]


def wazuh_batch() -> tuple[str, Any]:
    def alert(**more: Any) -> dict[str, Any]:
        return {"id": unique(), "rule": {"id": "5715"}, "full_log": good_line(), **more}

    return "/webhooks/wazuh", [alert(data=deep()), alert()]


BATCHES: dict[str, Callable[[], tuple[str, Any]]] = {
    "json": json_batch,
    "ndjson": ndjson_batch,
    "papertrail": papertrail_batch,
    "cloudwatch": cloudwatch_batch,
    "eventbridge": eventbridge_batch,
    "wazuh": wazuh_batch,
}


@pytest.mark.parametrize("route", BATCHES)
async def test_a_deep_record_is_its_own_invalid_and_the_batch_proceeds(
    served: Served, route: str
) -> None:
    path, body = BATCHES[route]()
    if isinstance(body, str):
        content = body.encode()
        headers = {**bearer(), "Content-Type": "application/x-ndjson"}
    else:
        content = json.dumps(body).encode()
        headers = {**bearer(), "Content-Type": "application/json"}
    response = await served.http.post(path, content=content, headers=headers)
    assert response.status_code == 202, response.text
    bad, good = response.json()["results"]
    assert bad["status"] == "invalid"
    assert f"nested deeper than {MAX_FIELD_DEPTH} levels" in bad["reason"]
    assert bad["review"] in ("requested", "already_requested")  # nothing silently dropped
    assert good["status"] == "started", good


async def test_a_deep_sns_message_is_its_own_invalid(served: Served) -> None:
    message = served.aws.sign(sources.notification(json.dumps({"message": "x", "deep": deep()})))
    response = await sources.post_sns(served, message)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["status"] == "invalid" and "nested deeper" in result["reason"]


def test_a_deep_record_in_a_backfill_is_its_own_invalid() -> None:
    lines = [
        json.dumps({"id": "d", "message": "x", "deep": deep()}) + "\n",
        json.dumps({"id": "g", "program": "sshd", "message": ssh_line("alice")}) + "\n",
        json.dumps(
            {"Records": [{"eventID": "e", "eventSource": "s", "eventName": "n", "x": deep()}]}
        ),
    ]
    located = list(records(lines))
    assert [item.item.error is None for item in located] == [False, True, False]
    assert located[0].line == 1 and "nested deeper" in (located[0].item.error or "")
    assert located[2].line == 3 and "nested deeper" in (located[2].item.error or "")

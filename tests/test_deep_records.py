"""One record nested 300 levels deep is that record's `invalid`, on every route and in the
backfill: never a 500 for its batch, which a sender would retry forever (issue 10, section 6).
Nor a 400 for its batch when it is nested deeper than Python's JSON decoder reaches (1,500
levels): that record alone is `invalid` (`powertrip.jsontext`)."""

from __future__ import annotations

import json
import re
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
from tests.harness import API_HEADERS, CONFIG_YAML, ssh_line


def deep(levels: int = 300) -> str:
    """A stand-in for a value nested `levels` deep, which `dumps` writes out: Python's own
    encoder cannot write one deeper than its stack."""
    return f"<deep:{levels}>"


def dumps(value: Any) -> str:
    """`value` as JSON text, each `deep` stand-in written out as objects nested that deep."""

    def nested(found: re.Match[str]) -> str:
        levels = int(found.group(1))
        return '{"a":' * levels + '"bottom"' + "}" * levels

    return re.sub(r'"<deep:(\d+)>"', nested, json.dumps(value))


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


def json_batch(levels: int) -> tuple[str, Any]:
    good = {"id": unique(), "message": good_line()}
    return "/webhooks/json", [{"id": unique(), "message": "x", "deep": deep(levels)}, good]


def ndjson_batch(levels: int) -> tuple[str, Any]:
    deep_line = dumps({"id": unique(), "message": "x", "deep": deep(levels)})
    good = dumps({"id": unique(), "message": good_line()})
    return "/webhooks/json", f"{deep_line}\n{good}\n"


def papertrail_batch(levels: int) -> tuple[str, Any]:
    def event(**more: Any) -> dict[str, Any]:
        return {"id": unique(), "hostname": "web-1", "program": "sshd", **more}

    bad = event(message=ssh_line("alice"), deep=deep(levels))
    return "/webhooks/papertrail", {"events": [bad, event(message=ssh_line(f"u{unique()}"))]}


def cloudwatch_batch(levels: int) -> tuple[str, Any]:
    deep_json = dumps({"message": "x", "deep": deep(levels)})
    batch = sources.subscription(sources.log_event(deep_json), sources.log_event(good_line()))
    return "/webhooks/cloudwatch", encode_awslogs(batch)


def eventbridge_batch(levels: int) -> tuple[str, Any]:
    bad = sources.cloudtrail_login(str(uuid.uuid4()), "alice")
    bad["detail"]["requestParameters"] = deep(levels)
    return "/webhooks/eventbridge", [
        bad,
        sources.cloudtrail_login(str(uuid.uuid4()), f"u{unique()}"),
    ]


def wazuh_batch(levels: int) -> tuple[str, Any]:
    def alert(**more: Any) -> dict[str, Any]:
        return {"id": unique(), "rule": {"id": "5715"}, "full_log": good_line(), **more}

    return "/webhooks/wazuh", [alert(data=deep(levels)), alert()]


BATCHES: dict[str, Callable[[int], tuple[str, Any]]] = {
    "json": json_batch,
    "ndjson": ndjson_batch,
    "papertrail": papertrail_batch,
    "cloudwatch": cloudwatch_batch,
    "eventbridge": eventbridge_batch,
    "wazuh": wazuh_batch,
}


@pytest.mark.parametrize("levels", [300, 1500])
@pytest.mark.parametrize("route", BATCHES)
async def test_a_deep_record_is_its_own_invalid_and_the_batch_proceeds(
    served: Served, route: str, levels: int
) -> None:
    path, body = BATCHES[route](levels)
    if isinstance(body, str):
        content = body.encode()
        headers = {**bearer(), "Content-Type": "application/x-ndjson"}
    else:
        content = dumps(body).encode()
        headers = {**bearer(), "Content-Type": "application/json"}
    response = await served.http.post(path, content=content, headers=headers)
    assert response.status_code == 202, response.text
    bad, good = response.json()["results"]
    assert bad["status"] == "invalid"
    assert f"nested deeper than {MAX_FIELD_DEPTH} levels" in bad["reason"]
    assert bad["review"] in ("requested", "already_requested")  # nothing silently dropped
    assert good["status"] == "started", good


async def test_a_deep_sns_message_is_its_own_invalid(served: Served) -> None:
    message = served.aws.sign(sources.notification(dumps({"message": "x", "deep": deep()})))
    response = await sources.post_sns(served, message)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["status"] == "invalid" and "nested deeper" in result["reason"]


def test_a_deep_record_in_a_backfill_is_its_own_invalid() -> None:
    lines = [
        dumps({"id": "d", "message": "x", "deep": deep()}) + "\n",
        dumps({"id": "g", "program": "sshd", "message": ssh_line("alice")}) + "\n",
        dumps({"Records": [{"eventID": "e", "eventSource": "s", "eventName": "n", "x": deep()}]}),
    ]
    located = list(records(lines))
    assert [item.item.error is None for item in located] == [False, True, False]
    assert located[0].line == 1 and "nested deeper" in (located[0].item.error or "")
    assert located[2].line == 3 and "nested deeper" in (located[2].item.error or "")


# An unpaired surrogate (`\ud800`) is valid JSON that UTF-8 cannot encode: it failed its whole
# batch with a 500 when the record was hashed or handed to Temporal, and every retry again.
ODD = "\ud800"


def odd_login() -> str:
    """A login line whose user name holds an unpaired surrogate."""
    return good_line().replace(" from ", f"{ODD} from ", 1)


def odd_batches() -> dict[str, tuple[str, Any]]:
    """Route -> (path, body): one record with an unpaired surrogate, then a good login."""

    def alert(line: str) -> dict[str, Any]:
        return {"id": unique(), "rule": {"id": "5715"}, "full_log": line}

    def trail(user: str, kind: str = "AWS Console Sign In via CloudTrail") -> dict[str, Any]:
        return {**sources.cloudtrail_login(str(uuid.uuid4()), user), "detail-type": kind}

    logins = sources.subscription(sources.log_event(odd_login()), sources.log_event(good_line()))
    return {
        "json": ("/webhooks/json", [{"id": unique(), "message": odd_login()}, good_json()]),
        "json-key": (
            "/webhooks/json",
            [{"id": unique(), "message": "x", f"{ODD}key": "v"}, good_json()],
        ),
        "papertrail": (
            "/webhooks/papertrail",
            {
                "events": [
                    papertrail_event(ssh_line(f"u{unique()}{ODD}")),
                    papertrail_event(ssh_line(f"u{unique()}")),
                ]
            },
        ),
        "cloudwatch": ("/webhooks/cloudwatch", encode_awslogs(logins)),
        "eventbridge": (
            "/webhooks/eventbridge",
            [trail(f"u{unique()}", f"AWS Console{ODD} Sign In"), trail(f"u{unique()}")],
        ),
        "wazuh": ("/webhooks/wazuh", [alert(odd_login()), alert(good_line())]),
    }


def good_json() -> dict[str, Any]:
    return {"id": unique(), "message": good_line()}


def papertrail_event(line: str) -> dict[str, Any]:
    return {"id": unique(), "hostname": "web-1", "program": "sshd", "message": line}


@pytest.mark.parametrize("route", odd_batches())
async def test_an_unpaired_surrogate_reads_as_a_replacement_character(
    served: Served, route: str
) -> None:
    path, body = odd_batches()[route]
    headers = {**bearer(), "Content-Type": "application/json"}
    response = await served.http.post(path, content=json.dumps(body), headers=headers)
    assert response.status_code == 202, response.text
    odd, good = response.json()["results"]
    assert good["status"] == "started", good
    assert odd["status"] in ("started", "unmatched", "non_event"), odd  # read, not refused
    if odd["status"] == "started" and route != "eventbridge":
        record = await served.http.get(f"/v1/events/{odd['event_id']}", headers=API_HEADERS)
        assert record.status_code == 200, record.text
        assert "\ufffd" in record.json()["actor"]


async def test_an_unpaired_surrogate_in_an_sns_message_is_read(served: Served) -> None:
    message = served.aws.sign(sources.notification(json.dumps({"message": odd_login()})))
    response = await sources.post_sns(served, message)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["status"] in ("started", "unmatched"), result  # read, not refused

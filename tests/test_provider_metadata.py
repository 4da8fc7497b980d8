"""What the provider says about a record wins over what the record says about itself (issue 10,
section 3), through the real webhooks on the dev server:

- syslog framing inside a message is read only where the transport named no program;
- a rule condition on a field never passes when the record lacks the field or leaves it empty;
- CloudTrail records are trusted as CloudTrail only from routes configured as CloudTrail.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from powertrip.models import RawEvent
from powertrip.rules import Rule
from powertrip.sources.cloudwatch import encode_awslogs
from tests.aws import (
    TOPIC,
    Served,
    bearer,
    cloudtrail_login,
    log_event,
    notification,
    post_sns,
    serving,
    subscription,
)
from tests.harness import CONFIG_YAML, exists

CLOUDTRAIL_TOPIC = "arn:aws:sns:eu-west-1:123456789012:cloudtrail-events"
TRAIL_GROUP = "aws-cloudtrail-logs-123456789012"


@pytest.fixture
async def served(
    dev_env: WorkflowEnvironment, slack_api_url: str, tmp_path: Path
) -> AsyncIterator[Served]:
    config = CONFIG_YAML + "rule_packs: [sshd, sudo, cloudtrail]\n"
    async with serving(
        dev_env,
        slack_api_url,
        tmp_path,
        config,
        sns_topic_arns=[TOPIC, CLOUDTRAIL_TOPIC],
        cloudtrail_sns_topic_arns=[CLOUDTRAIL_TOPIC],
        cloudtrail_log_groups=[TRAIL_GROUP],
    ) as served:
        yield served


def unique() -> str:
    return uuid.uuid4().hex[:10]


async def post_json(served: Served, body: Any) -> list[dict[str, Any]]:
    response = await served.http.post("/webhooks/json", json=body, headers=bearer())
    assert response.status_code == 202, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def test_a_message_never_overrides_the_host_and_program_its_provider_named(
    served: Served, dev_env: WorkflowEnvironment
) -> None:
    # The example: cron (any local user, with `logger`) writes an sshd-looking line.
    provider_id = f"x1-{unique()}"
    forged = {
        "id": provider_id,
        "host": "web-1",
        "program": "cron",
        "message": "Nov 30 05:00:00 bastion sshd[999]: Accepted publickey for alice from "
        "198.51.100.9 port 4444 ssh2",
    }
    [result] = await post_json(served, forged)
    assert (result["status"], result["event_id"]) == ("unmatched", None)
    assert not await exists(dev_env, f"json-{provider_id}")
    # A raw line the transport named nothing about is still read with its framing.
    line = {
        "id": f"raw-{unique()}",
        "message": "Nov 30 05:00:00 bastion sshd[999]: Accepted publickey for alice from "
        "198.51.100.9 port 4444 ssh2",
    }
    [result] = await post_json(served, line)
    assert (result["status"], result["rule_id"]) == ("started", "sshd-accepted")


async def test_a_rule_on_the_program_never_matches_a_record_without_one(
    served: Served,
) -> None:
    # A port of its own: the other tests' alice logins (one stamped without a zone, which may
    # match at any whole quarter-hour offset) must not make this one their duplicate.
    port = 20000 + uuid.uuid4().int % 40000
    bare = f"Accepted publickey for alice from 198.51.100.9 port {port} ssh2"
    # The examples: no program at all, Papertrail's empty program, and a plain line in
    # a CloudWatch log group.
    [result] = await post_json(
        served, {"id": f"np1-{unique()}", "host": "bastion", "message": bare}
    )
    assert result["status"] == "unmatched"

    papertrail = {
        "events": [
            {"id": unique(), "hostname": "bastion", "program": "", "message": bare},
            {"id": unique(), "hostname": "bastion", "program": "sshd", "message": bare},
        ]
    }
    response = await served.http.post("/webhooks/papertrail", json=papertrail, headers=bearer())
    assert [r["status"] for r in response.json()["results"]] == ["unmatched", "started"]

    plain = encode_awslogs(subscription(log_event(bare), stream="bastion"))
    response = await served.http.post("/webhooks/cloudwatch", json=plain, headers=bearer())
    [result] = response.json()["results"]
    assert result["status"] == "unmatched"


@pytest.mark.parametrize("pattern", [".*", "^$", "^(sshd)?$"])
def test_a_field_condition_fails_on_a_missing_or_empty_field_whatever_its_regex(
    pattern: str,
) -> None:
    rule = Rule.model_validate(
        {
            "id": "r",
            "title": "t",
            "match": {"program": pattern, "host": pattern, "message": "^x$"},
            "event": {"actor": "a", "action": "b"},
        }
    )
    for program, host in ((None, "h"), ("", "h"), ("p", None), ("p", "")):
        raw = RawEvent(source="t", provider_id="1", program=program, host=host, message="x")
        assert rule.apply(raw) is None, (program, host)
    present = RawEvent(source="t", provider_id="1", program="sshd", host="h", message="x")
    assert (rule.apply(present) is not None) is (pattern == ".*")
    json_rule = Rule.model_validate(
        {
            "id": "j",
            "title": "t",
            "match": {"fields": {"user": ""}, "field_patterns": {"kind": ".*"}},
            "event": {"actor": "a", "action": "b"},
        }
    )
    for fields in ({"user": "", "kind": "x"}, {"kind": "x"}, {"user": "", "kind": ""}):
        raw = RawEvent(source="t", provider_id="1", fields=fields)
        assert json_rule.apply(raw) is None, fields


async def test_cloudtrail_written_into_an_application_log_group_is_ordinary_json(
    served: Served, dev_env: WorkflowEnvironment
) -> None:
    # The example: an application's log group holds a CloudTrail-shaped line.
    event_id = str(uuid.uuid4())
    record = cloudtrail_login(event_id, f"u{unique()}")["detail"]
    forged = log_event(json.dumps(record))
    app_logs = encode_awslogs({**subscription(forged), "logGroup": "/app/payments"})
    response = await served.http.post("/webhooks/cloudwatch", json=app_logs, headers=bearer())
    [result] = response.json()["results"]
    assert (result["status"], result["event_id"]) == ("unmatched", None)
    assert not await exists(dev_env, f"cloudtrail-{event_id}")
    # The same record in the trail's own log group is CloudTrail's: the real event still
    # starts under its own name (the forgery took nothing from it).
    trail = encode_awslogs({**subscription(log_event(json.dumps(record))), "logGroup": TRAIL_GROUP})
    response = await served.http.post("/webhooks/cloudwatch", json=trail, headers=bearer())
    [result] = response.json()["results"]
    assert (result["status"], result["event_id"]) == ("started", f"cloudtrail-{event_id}")


async def test_cloudtrail_is_trusted_on_json_and_sns_only_where_configured(
    served: Served, dev_env: WorkflowEnvironment
) -> None:
    event_id = str(uuid.uuid4())
    login = cloudtrail_login(event_id, f"u{unique()}")
    # Posted as ordinary JSON: ordinary JSON (named by its content), never CloudTrail's.
    [result] = await post_json(served, login["detail"])
    assert result["status"] == "unmatched" and result["event_id"] is None
    # An EventBridge event relayed by a topic not listed as CloudTrail's: not trusted either.
    relayed = served.aws.sign(notification(json.dumps(login)))
    response = await post_sns(served, relayed)
    [result] = response.json()["results"]
    assert result["status"] == "unmatched"
    assert not await exists(dev_env, f"cloudtrail-{event_id}")
    # The CloudTrail topic: CloudTrail's, named by its eventID.
    trusted = served.aws.sign(notification(json.dumps(login), topic=CLOUDTRAIL_TOPIC))
    response = await post_sns(served, trusted)
    [result] = response.json()["results"]
    assert (result["status"], result["event_id"], result["rule_id"]) == (
        "started",
        f"cloudtrail-{event_id}",
        "cloudtrail-console-login",
    )
    # And EventBridge itself, the API destination the operator set up: the same event.
    response = await served.http.post("/webhooks/eventbridge", json=login, headers=bearer())
    [result] = response.json()["results"]
    assert (result["status"], result["event_id"]) == ("duplicate", f"cloudtrail-{event_id}")


@pytest.mark.parametrize("wire", [False, True], ids=["decoded", "awslogs"])
async def test_cloudwatch_data_naming_the_trails_group_on_an_ordinary_topic_is_not_trusted(
    served: Served, dev_env: WorkflowEnvironment, wire: bool
) -> None:
    """Red team F6: whoever may publish to the ordinary logs topic writes the `logGroup` of the
    data it publishes: naming the trail's group there trusts nothing. SNS vouches for the topic
    alone, so only the CloudTrail topic (with the group listed too) makes it CloudTrail's."""
    event_id = str(uuid.uuid4())
    record = cloudtrail_login(event_id, f"u{unique()}")["detail"]
    data = {**subscription(log_event(json.dumps(record))), "logGroup": TRAIL_GROUP}
    body = json.dumps(encode_awslogs(data) if wire else data)
    response = await post_sns(served, served.aws.sign(notification(body)))
    [result] = response.json()["results"]
    assert (result["status"], result["event_id"]) == ("unmatched", None), result
    assert not await exists(dev_env, f"cloudtrail-{event_id}")
    # The CloudTrail topic relaying an application's group: the group is not the trail's.
    app = {**data, "logGroup": "/app/payments", "logEvents": [log_event(json.dumps(record))]}
    relayed = served.aws.sign(notification(json.dumps(app), topic=CLOUDTRAIL_TOPIC))
    [result] = (await post_sns(served, relayed)).json()["results"]
    assert (result["status"], result["event_id"]) == ("unmatched", None), result
    # The trail's group on the CloudTrail topic: CloudTrail's, under its eventID.
    trail = {**data, "logEvents": [log_event(json.dumps(record))]}
    trusted = served.aws.sign(notification(json.dumps(trail), topic=CLOUDTRAIL_TOPIC))
    [result] = (await post_sns(served, trusted)).json()["results"]
    assert (result["status"], result["event_id"]) == ("started", f"cloudtrail-{event_id}")

"""Every source over HTTP against the real dev server: CloudWatch, SNS (signatures checked with a
locally generated key and certificate, no network), EventBridge, generic JSON/NDJSON; bad input
answered with a reason, bad batch members reported by index while the rest proceed, and
unrecognised records reviewed in the security channel once per shape per hour."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from temporalio.testing import WorkflowEnvironment

from powertrip.config import config_from_mapping
from powertrip.sandbox.fake_slack import FakeSlack
from powertrip.sources.cloudwatch import encode_awslogs
from powertrip.sources.sns import (
    CERTIFICATES_CACHED,
)
from tests.aws import (
    CERT_URL,
    EXTRA,
    TOPIC,
    Served,
    bearer,
    cloudtrail_login,
    log_event,
    notification,
    post_sns,
    serving,
    sns_time,
    subscription,
    unique,
)
from tests.harness import (
    CONFIG_YAML,
    eventually,
    running_worker,
    ssh_line,
)
from tests.servers import SECURITY_CHANNEL


@pytest.fixture
async def served(
    dev_env: WorkflowEnvironment, slack_api_url: str, tmp_path: Path
) -> AsyncIterator[Served]:
    async with serving(
        dev_env,
        slack_api_url,
        tmp_path,
        CONFIG_YAML + EXTRA,
        # The trail's log group: CloudTrail records there are CloudTrail's (nowhere else).
        cloudtrail_log_groups=["aws-cloudtrail-logs"],
        webhook_token_json="json-secret",
    ) as served:
        yield served


SUBSCRIBE_URL = (
    "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
    + TOPIC
    + "&Token=abc"
)


async def test_cloudwatch_batch_started_unmatched_invalid_by_index_then_duplicate(
    served: Served,
) -> None:
    user = f"u{unique()}"
    good = log_event(
        f"Nov 27 01:02:03 ip-10-0-0-5 sshd[4242]: Accepted publickey for {user} from "
        "2001:db8::5 port 50000 ssh2: ED25519 SHA256:k"
    )
    noise = log_event("Nov 27 01:02:04 ip-10-0-0-5 systemd[1]: Started Session 7 of user x.")
    broken = {"timestamp": 1795741323000, "message": "no id"}
    body = encode_awslogs(subscription(good, noise, broken))
    response = await served.http.post("/webhooks/cloudwatch", json=body, headers=bearer())
    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["started", "unmatched", "invalid"]
    assert results[0]["event_id"] == f"cloudwatch-{good['id']}"
    assert results[1]["review"] in ("requested", "already_requested")
    assert results[2]["index"] == 2 and "id" in results[2]["reason"]
    assert response.json()["summary"] == {"started": 1, "unmatched": 1, "invalid": 1}

    handle = served.http
    again = await handle.post("/webhooks/cloudwatch", json=body, headers=bearer())
    assert again.json()["results"][0]["status"] == "duplicate"


async def test_cloudwatch_control_message_and_broken_payloads(served: Served) -> None:
    control = encode_awslogs({"messageType": "CONTROL_MESSAGE", "logEvents": []})
    response = await served.http.post("/webhooks/cloudwatch", json=control, headers=bearer())
    assert response.status_code == 202 and response.json()["results"] == []

    cases = {
        "base64": {"awslogs": {"data": "not base64!!"}},
        "gzip": {"awslogs": {"data": base64.b64encode(b"plain, not gzip").decode()}},
        "awslogs": {"logs": []},
    }
    for reason, body in cases.items():
        response = await served.http.post("/webhooks/cloudwatch", json=body, headers=bearer())
        assert response.status_code == 400, reason
        assert reason in response.json()["detail"]
    unknown = encode_awslogs({"messageType": "SURPRISE"})
    response = await served.http.post("/webhooks/cloudwatch", json=unknown, headers=bearer())
    assert response.status_code == 400 and "SURPRISE" in response.json()["detail"]


@pytest.mark.parametrize("version", ["1", "2"])
async def test_sns_signed_cloudwatch_notification_is_the_same_event_as_direct(
    served: Served, version: str
) -> None:
    event = log_event(
        f"Nov 27 01:02:03 web-1 sudo: u{unique()} : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id"
    )
    message = served.aws.sign(
        notification(json.dumps(encode_awslogs(subscription(event))), version)
    )
    response = await post_sns(served, message)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert (result["status"], result["event_id"]) == ("started", f"cloudwatch-{event['id']}")
    # The same log event delivered directly: one event, not two.
    direct = await served.http.post(
        "/webhooks/cloudwatch", json=encode_awslogs(subscription(event)), headers=bearer()
    )
    assert direct.json()["results"][0]["status"] == "duplicate"
    assert served.aws.fetched.count(CERT_URL) == 1  # fetched once, then cached


async def test_sns_rejects_bad_signature_wrong_topic_foreign_cert_and_unknown_type(
    served: Served,
) -> None:
    signed = served.aws.sign(notification("Nov 27 01:02:03 h sshd[1]: hello"))
    tampered = {**signed, "Message": "Nov 27 01:02:03 h sshd[1]: Accepted password for x"}
    response = await post_sns(served, tampered)
    assert response.status_code == 403 and "signature" in response.json()["detail"]

    other_topic = served.aws.sign(notification("x", topic="arn:aws:sns:eu-west-1:666:evil"))
    response = await post_sns(served, other_topic)
    assert response.status_code == 403 and "not configured" in response.json()["detail"]

    served.aws.fetched.clear()
    for url in (
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "http://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
    ):
        forged = served.aws.sign({**notification("x"), "SigningCertURL": url})
        response = await post_sns(served, forged)
        assert response.status_code == 403 and "SigningCertURL" in response.json()["detail"]
    assert served.aws.fetched == []  # refused before any fetch

    unknown = {**notification("x"), "Type": "Surprise"}
    response = await post_sns(served, unknown)
    assert response.status_code == 400 and "Surprise" in response.json()["detail"]

    no_token = await served.http.post("/webhooks/sns", content=json.dumps(signed))
    assert no_token.status_code == 401
    global_token = await served.http.post(
        "/webhooks/sns", content=json.dumps(signed), headers=bearer("hook-secret")
    )
    assert global_token.status_code == 401  # the SNS endpoint has its own secret
    basic = base64.b64encode(b"sns:sns-secret").decode()
    response = await served.http.post(
        "/webhooks/sns", content=json.dumps(signed), headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("age", "reason"),
    [
        (timedelta(hours=2), "older than 1:00:00"),
        (timedelta(days=30), "older than"),
        (-timedelta(hours=1), "in the future"),
    ],
)
async def test_sns_refuses_a_signed_message_replayed_later(
    served: Served, age: timedelta, reason: str
) -> None:
    """A correctly signed message captured once cannot be posted again hours later: the
    signed Timestamp must be fresh."""
    line = f"Nov 27 01:02:03 web-1 sshd[1]: {ssh_line('u' + unique())}"
    stale = served.aws.sign({**notification(line), "Timestamp": sns_time(datetime.now(UTC) - age)})
    response = await post_sns(served, stale)
    assert response.status_code == 403, response.text
    assert reason in response.json()["detail"] and "Timestamp" in response.json()["detail"]
    fresh = await post_sns(served, served.aws.sign({**stale, "Timestamp": sns_time()}))
    assert fresh.status_code == 200 and fresh.json()["results"][0]["status"] == "started"


async def test_sns_certificate_cache_is_bounded(served: Served) -> None:
    """Every signing-certificate URL a signed message names is fetched and cached: the cache
    keeps a bounded number, however many URLs arrive."""
    for n in range(CERTIFICATES_CACHED + 8):
        url = f"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-{n:04}.pem"
        message = served.aws.sign({**notification("hello"), "SigningCertURL": url})
        response = await post_sns(served, message)
        assert response.status_code == 200, response.text
    verifier = served.http_app.state.sns_verifier
    assert 0 < verifier.cached_certificates <= CERTIFICATES_CACHED


def confirmation(served: Served, topic: str = TOPIC, url: str = SUBSCRIBE_URL) -> dict[str, Any]:
    """A signed SubscriptionConfirmation for `topic`, confirmed by GET `url`."""
    return served.aws.sign(
        {
            **notification("You have chosen to subscribe", topic=topic),
            "Type": "SubscriptionConfirmation",
            "Token": "abc",
            "SubscribeURL": url,
        }
    )


async def test_sns_subscription_confirmed_only_for_configured_topics(served: Served) -> None:
    served.aws.fetched.clear()
    response = await post_sns(served, confirmation(served, "arn:aws:sns:eu-west-1:666:evil"))
    assert response.status_code == 403
    assert SUBSCRIBE_URL not in served.aws.fetched

    response = await post_sns(served, confirmation(served, url="https://evil.example/confirm"))
    assert response.status_code == 403 and "SubscribeURL" in response.json()["detail"]
    assert "https://evil.example/confirm" not in served.aws.fetched

    response = await post_sns(served, confirmation(served))
    assert response.status_code == 200
    assert response.json()["confirmed"] is True
    assert SUBSCRIBE_URL in served.aws.fetched


# Not SNS's URL (TOPIC is in eu-west-1), each a way a URL parser bends: `{path}` is the
# certificate's file or the confirmation's query.
NOT_SNS_URLS = (
    "https://sns.eu-west-1.amazonaws.com:abc/{path}",  # a port that is no number
    "https://sns.eu-west-1.amazonaws.com:99999/{path}",  # beyond 65535
    "https://sns.eu-west-1.amazonaws.com:0/{path}",
    "https://sns.eu-west-1.amazonaws.com:8443/{path}",
    "https://[sns.eu-west-1.amazonaws.com/{path}",  # an IPv6 bracket never closed
    "https://user@sns.eu-west-1.amazonaws.com/{path}",
    "https://sns.eu-west-1.amazonaws.com\\@evil.example/{path}",  # a backslash is `/` to a browser
    "https://sns.eu-west-1.amazonaws.com\t/{path}",  # a tab urlsplit drops
    " https://sns.eu-west-1.amazonaws.com/{path}",
    "https://sns.eu-west-1.amazonaws.com./{path}",
    "https://sns.us-east-1.amazonaws.com/{path}",  # another region than the topic's
)


async def test_sns_refuses_a_url_not_exactly_sns_with_403_before_fetching(served: Served) -> None:
    """A signing-certificate or subscription URL that is not exactly SNS's endpoint for the
    topic's region is refused with 403 naming the field, never a 500, and never fetched; the
    default port spelt out is SNS's."""
    served.aws.fetched.clear()
    for url in NOT_SNS_URLS:
        cert_url = url.format(path="SimpleNotificationService-0000.pem")
        response = await post_sns(
            served, served.aws.sign({**notification("hello"), "SigningCertURL": cert_url})
        )
        assert response.status_code == 403, (cert_url, response.text)
        assert (
            "SigningCertURL must be an https://sns.eu-west-1.amazonaws.com/ URL"
            in (response.json()["detail"])
        )
        subscribe_url = url.format(path="?Action=ConfirmSubscription&Token=abc")
        response = await post_sns(served, confirmation(served, url=subscribe_url))
        assert response.status_code == 403, (subscribe_url, response.text)
        assert "SubscribeURL must be" in response.json()["detail"]
    assert set(served.aws.fetched) == {CERT_URL}  # the valid messages' own certificate only

    default_port = CERT_URL.replace(".com/", ".com:443/")
    response = await post_sns(
        served, served.aws.sign({**notification("hello"), "SigningCertURL": default_port})
    )
    assert response.status_code == 200, response.text


async def test_eventbridge_cloudtrail_keyed_by_event_id_and_ignored_unmatched(
    served: Served,
) -> None:
    event_id = str(uuid.uuid4())
    login = cloudtrail_login(event_id, f"u{unique()}")
    response = await served.http.post("/webhooks/eventbridge", json=login, headers=bearer())
    assert response.status_code == 202, response.text
    [result] = response.json()["results"]
    assert (result["status"], result["event_id"], result["rule_id"]) == (
        "started",
        f"cloudtrail-{event_id}",
        "cloudtrail-console-login",
    )
    # The same API call, also shipped by the trail to CloudWatch Logs: still one event.
    via_logs = encode_awslogs(
        {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": "aws-cloudtrail-logs",
            "logStream": "123456789012_CloudTrail_us-east-1",
            "subscriptionFilters": ["all"],
            "logEvents": [
                {"id": "3" * 56, "timestamp": 1795741323000, "message": json.dumps(login["detail"])}
            ],
        }
    )
    response = await served.http.post("/webhooks/cloudwatch", json=via_logs, headers=bearer())
    [result] = response.json()["results"]
    assert (result["status"], result["event_id"]) == ("duplicate", f"cloudtrail-{event_id}")
    # A redelivery with a new envelope id is still the same CloudTrail event.
    redelivered = {**login, "id": str(uuid.uuid4())}
    batch = [redelivered, {"detail-type": "x", "source": "aws.s3"}]
    response = await served.http.post("/webhooks/eventbridge", json=batch, headers=bearer())
    results = response.json()["results"]
    assert results[0]["status"] == "duplicate"
    assert results[1]["status"] == "invalid" and "detail" in results[1]["reason"]

    unmatched = {"source": "eventbridge", "rule": "none", "outcome": "unmatched"}
    before = REGISTRY.get_sample_value("powertrip_events_total", unmatched) or 0
    listing = cloudtrail_login(str(uuid.uuid4()), "x")
    listing["detail"]["eventName"] = "ListBuckets"
    response = await served.http.post("/webhooks/eventbridge", json=listing, headers=bearer())
    [result] = response.json()["results"]
    # This config ignores unmatched EventBridge records: counted, not sent for review.
    assert (result["status"], result["review"]) == ("unmatched", "ignored")
    assert REGISTRY.get_sample_value("powertrip_events_total", unmatched) == before + 1


async def test_json_and_ndjson_with_their_own_secret(served: Served) -> None:
    user = f"u{unique()}"
    line = {"host": "db-1", "program": "breakglass", "message": f"BREAKGLASS user={user}"}
    response = await served.http.post("/webhooks/json", json=line, headers=bearer())
    assert response.status_code == 401  # the JSON endpoint has its own secret
    response = await served.http.post("/webhooks/json", json=line, headers=bearer("json-secret"))
    assert response.status_code == 202, response.text
    [result] = response.json()["results"]
    assert (result["status"], result["rule_id"]) == ("started", "custom-break-glass")
    again = await served.http.post("/webhooks/json", json=line, headers=bearer("json-secret"))
    assert again.json()["results"][0]["status"] == "duplicate"  # no id: the content is the id

    ssh = f"Accepted password for {user} from 192.0.2.10 port 2 ssh2"
    ndjson = "\n".join(
        [
            json.dumps({"id": unique(), "event": "vpn.login", "user": user, "ip": "192.0.2.9"}),
            "{not json",
            "",
            json.dumps(
                {
                    "id": unique(),
                    "message": f"Nov 27 01:02:03 web-2 sshd[9]: {ssh}",
                }
            ),
            json.dumps(["not", "an", "object"]),
        ]
    )
    response = await served.http.post(
        "/webhooks/json",
        content=ndjson,
        headers={**bearer("json-secret"), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    by_index = {r["index"]: r for r in response.json()["results"]}
    assert sorted(by_index) == [0, 1, 3, 4]
    assert by_index[0]["rule_id"] == "custom-vpn-login"
    assert by_index[1]["status"] == "invalid" and "line 2" in by_index[1]["reason"]
    assert by_index[3]["rule_id"] == "sshd-accepted" and by_index[3]["status"] == "started"
    assert by_index[4]["status"] == "invalid"


async def test_unmatched_lines_reviewed_once_per_shape_per_hour(
    served: Served, dev_env: WorkflowEnvironment, fake_slack: FakeSlack
) -> None:
    marker = f"zz{uuid.uuid4().hex[:8]}"  # a shape no other test sends

    def odd(n: int) -> dict[str, Any]:
        return log_event(f"Nov 27 01:02:0{n} db-{n} pgaudit[{n}]: {marker} role granted to x{n}")

    config = config_from_mapping(
        {**yaml.safe_load(CONFIG_YAML), "rule_packs": ["sshd"]}, Path.cwd(), "t"
    )
    async with running_worker(dev_env.client, served.settings, config):
        body = encode_awslogs(subscription(odd(1), odd(2), odd(3)))
        response = await served.http.post("/webhooks/cloudwatch", json=body, headers=bearer())
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["unmatched"] * 3
        assert sorted(r["review"] for r in results) == [
            "already_requested",
            "already_requested",
            "requested",
        ]
        assert len({r["review_id"] for r in results}) == 1

        def reviews() -> list[Any]:
            return [
                m
                for m in fake_slack.messages.values()
                if m.channel == SECURITY_CHANNEL and marker in json.dumps(m.blocks)
            ]

        [review] = await eventually(reviews, within=20)
        assert "Unrecognised cloudwatch record" in review.text
        assert "pgaudit" in json.dumps(review.blocks)
        later = await served.http.post(
            "/webhooks/cloudwatch", json=encode_awslogs(subscription(odd(4))), headers=bearer()
        )
        assert later.json()["results"][0]["review"] == "already_requested"
    assert len(reviews()) == 1


async def test_one_line_by_sns_and_by_cloudwatch_is_one_event(served: Served) -> None:
    """Two routes, two unrelated ids (SNS MessageId, CloudWatch event id), one login."""
    host = f"web-{unique()}"
    now = datetime.now(UTC)
    line = f"{now.isoformat()} {host} sshd[31]: {ssh_line('alice', port=41234)}"
    by_sns = await post_sns(served, served.aws.sign(notification(line)))
    [first] = by_sns.json()["results"]
    assert first["status"] == "started", first
    direct = await served.http.post(
        "/webhooks/cloudwatch",
        json=encode_awslogs(
            subscription({**log_event(line), "timestamp": int(now.timestamp() * 1000) + 1500})
        ),
        headers=bearer(),
    )
    [second] = direct.json()["results"]
    assert (second["status"], second["event_id"]) == ("duplicate", first["event_id"])

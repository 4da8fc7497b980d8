"""What a CloudTrail record says happened, through the real EventBridge and CloudWatch webhooks on
the dev server (red team class C): a failed attempt is never an action to approve, an AWS
service acting as itself is no person to ask, an addendum re-delivery is its original's event,
a portal sign-in is a login, and reviews of CloudTrail records never keep who made them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from powertrip.sources.cloudwatch import encode_awslogs
from tests.aws import log_event, subscription
from tests.harness import (
    API_HEADERS,
    CONFIG_YAML,
    WEBHOOK_HEADERS,
    api_client,
    fresh_namespace,
    settings_with_config,
)

ACCOUNT = "123456789012"
ROOT = {"type": "Root", "principalId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:root"}
TRAIL_GROUP = "aws-cloudtrail-logs-example"


def user(name: str) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": f"AIDA{name.upper()}",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "accountId": ACCOUNT,
        "userName": name,
    }


def record(event_name: str, source: str, identity: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": "2026-11-30T05:00:00Z",
        "eventSource": source,
        "eventName": event_name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "Mozilla/5.0",
        "eventID": str(uuid.uuid4()),
        "recipientAccountId": ACCOUNT,
        **fields,
    }


def sign_in(event_name: str, identity: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return record(
        event_name, "signin.amazonaws.com", identity, eventType="AwsConsoleSignIn", **fields
    )


def envelope(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS Console Sign In via CloudTrail",
        "source": "aws.signin",
        "account": ACCOUNT,
        "time": detail["eventTime"],
        "region": "us-east-1",
        "detail": detail,
    }


@pytest.fixture
async def http(
    dev_env: WorkflowEnvironment, slack_api_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    client = await fresh_namespace(dev_env)
    settings = settings_with_config(
        dev_env,
        slack_api_url,
        tmp_path,
        CONFIG_YAML + "rule_packs: [sshd, cloudtrail]\n",
        temporal_namespace=client.namespace,
        cloudtrail_log_groups=[TRAIL_GROUP],
    )
    async with api_client(settings) as served:
        yield served


async def post(http: httpx.AsyncClient, *details: dict[str, Any]) -> list[dict[str, Any]]:
    events = [envelope(detail) for detail in details]
    response = await http.post("/webhooks/eventbridge", json=events, headers=WEBHOOK_HEADERS)
    assert response.status_code == 202, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def test_failed_attempts_are_never_approvable(http: httpx.AsyncClient) -> None:
    """C1, C4: whatever the call, a `Failure` under its own name, an errorCode or an
    errorMessage is a failed attempt: a failed sign-in is a known non-event."""
    failed_sign_ins = [
        sign_in("CheckMfa", ROOT, responseElements={"CheckMfa": "Failure"}),  # the finding
        sign_in(
            "ConsoleLogin",
            ROOT,
            responseElements={"ConsoleLogin": "Failure"},
            errorMessage="Failed authentication",
        ),
        sign_in(
            "PasswordRecoveryRequested",
            ROOT,
            responseElements={"PasswordRecoveryRequested": "Failure"},
        ),
        sign_in("ConsoleLogin", user("alice"), responseElements={"ConsoleLogin": "Failure"}),
        sign_in("ConsoleLogin", user("bob"), errorMessage="Failed authentication"),
        sign_in("SwitchRole", user("alice"), responseElements={"SwitchRole": "Failure"}),
        sign_in(
            "CredentialVerification",
            {"type": "Unknown", "userName": "alice"},
            serviceEventDetails={"CredentialVerification": "Failure"},
        ),
        sign_in(
            "UserAuthentication",
            {"type": "Unknown", "userName": "alice"},
            serviceEventDetails={"UserAuthentication": "Failure"},
        ),
    ]
    results = await post(http, *failed_sign_ins)
    assert [(r["status"], r["rule_id"]) for r in results] == [
        ("non_event", "cloudtrail-failed-sign-in")
    ] * len(failed_sign_ins), results
    # A root call refused (errorCode) is no root activity to approve either: it is reviewed.
    [denied] = await post(
        http, record("CreateAccessKey", "iam.amazonaws.com", ROOT, errorCode="AccessDenied")
    )
    assert denied["status"] == "unmatched", denied


async def test_reviews_of_cloudtrail_records_never_keep_who_made_them(
    http: httpx.AsyncClient,
) -> None:
    """C4: refused calls by mallory, by bob and by another account are one review shape."""

    def refused(identity: dict[str, Any]) -> dict[str, Any]:
        return record(
            "AssumeRole",
            "sts.amazonaws.com",
            identity,
            errorCode="AccessDenied",
            errorMessage=f"User: {identity.get('arn')} is not authorized to perform AssumeRole",
            requestParameters={"roleArn": f"arn:aws:iam::{ACCOUNT}:role/Admin"},
        )

    other = {"type": "AWSAccount", "principalId": "AIDAOTHER", "accountId": "210987654321"}
    named = [
        {"type": "IAMUser", "principalId": f"AIDA{n}", "userName": n} for n in ("eve", "oscar")
    ]
    identities = [user("mallory"), user("bob"), other, *named]
    results = await post(http, *(refused(identity) for identity in identities))
    assert [r["status"] for r in results] == ["unmatched"] * 5, results
    assert len({r["review_id"] for r in results}) == 1, results
    assert [r["review"] for r in results] == ["requested"] + ["already_requested"] * 4


async def test_an_aws_service_acting_as_itself_is_no_person_to_ask(http: httpx.AsyncClient) -> None:
    """C2: Lambda assuming its `*admin*` execution role paged at any hour on every cold start."""

    def by_service(service: str, event_name: str, source: str, **fields: Any) -> dict[str, Any]:
        identity = {"type": "AWSService", "invokedBy": service}
        return record(event_name, source, identity, sourceIPAddress=service, **fields)

    role = {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/service-role/cache-admin-lambda-role"}
    results = await post(
        http,
        by_service(
            "lambda.amazonaws.com", "AssumeRole", "sts.amazonaws.com", requestParameters=role
        ),
        by_service("ec2.amazonaws.com", "AssumeRole", "sts.amazonaws.com", requestParameters=role),
        by_service(
            "cloudformation.amazonaws.com",
            "AttachRolePolicy",
            "iam.amazonaws.com",
            requestParameters={"roleName": "OrgAdmin"},
        ),
    )
    assert [(r["status"], r["rule_id"]) for r in results] == [
        ("non_event", "cloudtrail-aws-service")
    ] * 3, results
    # A person assuming the same role is still asked.
    person = record("AssumeRole", "sts.amazonaws.com", user("alice"), requestParameters=role)
    [asked] = await post(http, person)
    assert (asked["status"], asked["rule_id"]) == ("started", "cloudtrail-assume-admin-role")


async def test_an_addendum_re_delivery_is_its_originals_event(http: httpx.AsyncClient) -> None:
    """C3: CloudTrail re-delivers a record under a new eventID with `addendum.originalEventID`;
    in either order and by either route, it is one event."""

    def login() -> tuple[dict[str, Any], dict[str, Any]]:
        original = sign_in(
            "ConsoleLogin", user("alice"), responseElements={"ConsoleLogin": "Success"}
        )
        addendum = {
            **original,
            "eventID": str(uuid.uuid4()),
            "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/"},
            "addendum": {
                "reason": "UPDATED_DATA",
                "updatedFields": "additionalEventData",
                "originalRequestID": "",
                "originalEventID": original["eventID"],
            },
        }
        return original, addendum

    original, addendum = login()
    first, second = await post(http, original), await post(http, addendum)
    name = f"cloudtrail-{original['eventID']}"
    assert (first[0]["status"], first[0]["event_id"]) == ("started", name)
    assert (second[0]["status"], second[0]["event_id"]) == ("duplicate", name), second
    # The addendum first, then the original through the trail's CloudWatch Logs group.
    original, addendum = login()
    [early] = await post(http, addendum)
    name = f"cloudtrail-{original['eventID']}"
    assert (early["status"], early["event_id"]) == ("started", name), early
    data = {**subscription(log_event(json.dumps(original))), "logGroup": TRAIL_GROUP}
    response = await http.post(
        "/webhooks/cloudwatch", json=encode_awslogs(data), headers=WEBHOOK_HEADERS
    )
    [late] = response.json()["results"]
    assert (late["status"], late["event_id"]) == ("duplicate", name), late


async def test_an_addendum_that_updates_the_record_is_no_conflict(http: httpx.AsyncClient) -> None:
    """C3: an UPDATED_DATA addendum says something else than its original by design (here the
    user's ARN, missing at first): in either order it is the original's event, a duplicate that
    says it is an addendum, never a conflict reported to the security channel as a record
    planted under the id. A record reusing an eventID without re-delivering another record
    still is one."""

    def login() -> tuple[dict[str, Any], dict[str, Any]]:
        without_arn = {"type": "IAMUser", "accountId": ACCOUNT, "userName": "alice"}
        original = sign_in(
            "ConsoleLogin", without_arn, responseElements={"ConsoleLogin": "Success"}
        )
        addendum = {
            **original,
            "eventID": str(uuid.uuid4()),
            "userIdentity": user("alice"),
            "addendum": {
                "reason": "UPDATED_DATA",
                "updatedFields": "userIdentity",
                "originalRequestID": "",
                "originalEventID": original["eventID"],
            },
        }
        return original, addendum

    original, addendum = login()
    name = f"cloudtrail-{original['eventID']}"
    [first] = await post(http, original)
    assert (first["status"], first["event_id"]) == ("started", name), first
    [second] = await post(http, addendum)
    assert (second["status"], second["event_id"]) == ("duplicate", name), second
    assert f"an addendum of {name}" in second["reason"], second
    assert addendum["eventID"] in second["reason"], second
    # A record naming itself re-delivers nothing: under the original's eventID with another
    # user, it is the planted record the conflict check is for.
    planted = {**original, "userIdentity": user("mallory")}
    naming_itself = {**addendum, "eventID": original["eventID"]}
    conflicts = await post(http, planted, naming_itself)
    assert [(r["status"], r["event_id"]) for r in conflicts] == [("conflict", name)] * 2
    # The addendum first, then the original (and the addendum again): one event.
    original, addendum = login()
    name = f"cloudtrail-{original['eventID']}"
    early, late, again = (
        await post(http, addendum),
        await post(http, original),
        await post(http, addendum),
    )
    assert [(r[0]["status"], r[0]["event_id"]) for r in (early, late, again)] == [
        ("started", name),
        ("duplicate", name),
        ("duplicate", name),
    ]
    # Another user under the addendum's own eventID, again naming the original: a record
    # planted under the addendum's id.
    [planted] = await post(http, {**addendum, "userIdentity": user("mallory")})
    assert (planted["status"], planted["event_id"]) == ("conflict", name), planted


async def test_an_identity_center_portal_sign_in_is_a_login(http: httpx.AsyncClient) -> None:
    """C5: the AWS access portal's sign-in (`UserAuthentication`) was only reviewed."""
    portal = sign_in(
        "UserAuthentication",
        {"type": "Unknown", "principalId": ACCOUNT, "accountId": ACCOUNT, "userName": "alice"},
        serviceEventDetails={"UserAuthentication": "Success"},
        additionalEventData={
            "LoginTo": "https://example.awsapps.com/start/",
            "CredentialType": "PASSWORD",
        },
    )
    steps = [
        sign_in(name, portal["userIdentity"], serviceEventDetails={name: "Success"})
        for name in ("CredentialChallenge", "CredentialVerification")
    ]
    *counted, result = await post(http, *steps, portal)
    assert (result["status"], result["rule_id"]) == (
        "started",
        "cloudtrail-identity-center-sign-in",
    )
    # Its steps are counted, not reviewed: the sign-in is the one thing to ask about.
    assert [(r["status"], r["rule_id"]) for r in counted] == [
        ("non_event", "cloudtrail-sign-in-step")
    ] * 2
    view = (await http.get(f"/v1/events/{result['event_id']}", headers=API_HEADERS)).json()
    assert (view["actor"], view["action"], view["address"]) == (
        "alice",
        "AWS IAM Identity Center sign-in",
        "203.0.113.7",
    )

"""CloudTrail records, whichever route delivers them (EventBridge, CloudWatch Logs, SNS, a
backfill): CloudTrail's own `eventID` names the event, so one API call that reaches Powertrip by
two routes is one event, `cloudtrail-<eventID>`. The delivering route stays the record's source
(its endpoint, secret, metrics and `ignore_unmatched`).

Trust: only routes configured as CloudTrail produce CloudTrail records (`id_namespace
"cloudtrail"`, which the `cloudtrail` rule pack requires): EventBridge, the SNS topics in
`POWERTRIP_CLOUDTRAIL_SNS_TOPIC_ARNS`, the CloudWatch Logs groups in
`POWERTRIP_CLOUDTRAIL_LOG_GROUPS`, and a backfill of CloudTrail's own files. Anywhere else a
CloudTrail-shaped JSON line is ordinary JSON: an application that writes one into its log cannot
make Powertrip ask someone about an AWS action.

The person behind a record (`actor`) is resolved in this order (the CloudTrail `userIdentity`
element: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-
user-identity.html), and the rules read it as `powertrip.actor` (`powertrip.actor_from` names the
field it came from):
1. `userIdentity.sessionContext.sourceIdentity`: the source identity fixed when the role session
   was created, which survives role chaining;
2. by `userIdentity.type`:
   - `Root`: `root`;
   - `IAMUser`: `userName`, else the user name at the end of the ARN;
   - `AssumedRole`: the session name at the end of the ARN (`assumed-role/<role>/<session>`; for
     IAM Identity Center roles that is the user's name), else after `:` in `principalId`;
   - `FederatedUser`: the name at the end of the ARN (`federated-user/<name>`);
   - `SAMLUser`, `WebIdentityUser`: `userName` (the SAML subject, the web identity's user id);
   - `AWSAccount` (another account called, e.g. a cross-account `AssumeRole`; its
     `principalId` is opaque): `requestParameters.sourceIdentity`, then
     `requestParameters.roleSessionName`;
   - `AWSService`: `invokedBy` (a service, not a person: nobody is DM'd);
   - `IdentityCenterUser`: `onBehalfOf.userId`;
3. `userIdentity.userName`, then `userIdentity.principalId` (an id no user is mapped to: the
   security channel is asked).

Whether the call succeeded (`outcome_of`, read by rules as `powertrip.outcome`: `success` or
`failure`, with `powertrip.failure` saying why): a record is a failed attempt when it has an
`errorCode` or `errorMessage`, or when its result under its own event name says `Failure`:
`responseElements.<eventName>` (ConsoleLogin, CheckMfa, SwitchRole, ...) or
`serviceEventDetails.<eventName>` (Identity Center's UserAuthentication, CredentialVerification,
CredentialChallenge). A failure is never an action someone took: the pack's rules never ask
about one.

A CloudTrail `addendum` (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-
event-reference-record-contents.html: a delayed or updated re-delivery of a record, under a new
`eventID`) names the record it re-delivers (`addendum.originalEventID`): it is that record's
event, `cloudtrail-<originalEventID>`, so the person is not asked twice. Its own `eventID` is
kept (`addendum_id`): an addendum says something else than its original by design (the fields it
updates), which is no conflict, while another content under one record's own `eventID` is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from powertrip import jsontext
from powertrip.models import RawEvent
from powertrip.rules import lookup
from powertrip.sources import ParsedItem, describe_validation_error, invalid

ID_NAMESPACE = "cloudtrail"
_ARN_NAME = re.compile(r":(?:user/(?:[^/]+/)*|assumed-role/[^/]+/|federated-user/)([^/]+)$")
_BY_TYPE: dict[str, tuple[str, ...]] = {
    "IAMUser": ("userIdentity.userName", "arn"),
    "AssumedRole": ("arn", "principal-session"),
    "FederatedUser": ("arn", "principal-session"),
    "SAMLUser": ("userIdentity.userName",),
    "WebIdentityUser": ("userIdentity.userName",),
    "AWSAccount": ("requestParameters.sourceIdentity", "requestParameters.roleSessionName"),
    "AWSService": ("userIdentity.invokedBy",),
    "IdentityCenterUser": ("userIdentity.onBehalfOf.userId",),
}


def is_cloudtrail_record(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("eventID"), str)
        and bool(value["eventID"])
        and "eventSource" in value
        and "eventName" in value
    )


def actor_of(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """The person behind a CloudTrail record and the field it came from, in the module's order;
    (None, None) when the record names nobody."""
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        return None, None
    kind = identity.get("type")
    if kind == "Root":
        return "root", "userIdentity.type"
    candidates = (
        "userIdentity.sessionContext.sourceIdentity",
        *_BY_TYPE.get(str(kind), ()),
        "userIdentity.userName",
        "userIdentity.principalId",
    )
    for path in candidates:
        if path == "arn":
            found = _ARN_NAME.search(str(identity.get("arn") or ""))
            value: Any = found.group(1) if found else None
            path = "userIdentity.arn"
        elif path == "principal-session":
            principal = str(identity.get("principalId") or "")
            value = principal.partition(":")[2] or None
            path = "userIdentity.principalId"
        else:
            value = lookup(record, path)
        if isinstance(value, str) and value.strip():
            return value.strip(), path
    return None, None


def outcome_of(record: dict[str, Any]) -> tuple[str, str | None]:
    """`("success", None)`, or `("failure", why)` for a failed attempt (see the module)."""
    for key in ("errorCode", "errorMessage"):
        value = record.get(key)
        if value not in (None, ""):
            return "failure", f"{key}: {value}"
    name = record.get("eventName")
    if isinstance(name, str) and name:
        for holder in ("responseElements", "serviceEventDetails"):
            result = lookup(record, f"{holder}.{name}")
            if isinstance(result, str) and result.strip().lower() == "failure":
                return "failure", f"{holder}.{name}: {result}"
    return "success", None


def original_event_id(record: dict[str, Any]) -> str | None:
    """The `eventID` of the record an addendum re-delivers (`addendum.originalEventID`, which
    CloudTrail gives with reason `UPDATED_DATA`); None for a record that re-delivers none: no
    addendum, a `DELIVERY_DELAY` or `SERVICE_OUTAGE` one (the late record itself), or one naming
    its own `eventID`."""
    original = lookup(record, "addendum.originalEventID")
    if not isinstance(original, str) or not original.strip():
        return None
    return original.strip() if original.strip() != str(record["eventID"]) else None


def provider_id_of(record: dict[str, Any]) -> str:
    """The record's own `eventID`, or for an addendum the `eventID` it re-delivers."""
    return original_event_id(record) or str(record["eventID"])


def cloudtrail_raw(
    record: dict[str, Any],
    source: str,
    *,
    received_at: datetime | str | None = None,
    account: str | None = None,
) -> RawEvent:
    """The same RawEvent from the same CloudTrail record on every route configured as CloudTrail
    (rules match `fields`: the record, with `powertrip.actor`, `.actor_from`, `.outcome` and
    `.failure`), named by its `eventID` (an addendum by the one it re-delivers)."""
    actor, actor_from = actor_of(record)
    outcome, failure = outcome_of(record)
    user = lookup(record, "userIdentity.arn") or lookup(record, "userIdentity.userName")
    powertrip = {"actor": actor, "actor_from": actor_from, "outcome": outcome, "failure": failure}
    return RawEvent(
        source=source,
        id_namespace=ID_NAMESPACE,
        provider_id=provider_id_of(record),
        addendum_id=str(record["eventID"]) if original_event_id(record) else None,
        received_at=record.get("eventTime") or received_at,
        host=record.get("recipientAccountId") or account,
        program=record.get("eventSource"),
        message=" ".join(str(part) for part in (record.get("eventName"), user) if part),
        fields={**record, "powertrip": powertrip},
    )


def cloudtrail_item(index: int, record: Any, source: str) -> ParsedItem:
    """One record of a CloudTrail file or answer, or why it is not one."""
    if not is_cloudtrail_record(record):
        reason = "not a CloudTrail record (no eventID, eventSource, eventName)"
        return invalid(index, reason, record)
    try:
        return ParsedItem(index=index, raw=cloudtrail_raw(record, source))
    except ValidationError as exc:
        return invalid(index, describe_validation_error(exc), record)


def is_cloudtrail_document(value: Any) -> bool:
    """CloudTrail's own file shapes: a delivery file `{"Records": [...]}` as written to S3, or
    `aws cloudtrail lookup-events` output `{"Events": [{"CloudTrailEvent": "<json>"}]}`."""
    if not isinstance(value, dict):
        return False
    if isinstance(value.get("Records"), list):
        return True
    events = value.get("Events")
    return (
        isinstance(events, list)
        and bool(events)
        and all(isinstance(e, dict) and "CloudTrailEvent" in e for e in events)
    )


def cloudtrail_records(value: Any) -> Iterator[tuple[Any, str | None]]:
    """The records in a CloudTrail document (`Records`, lookup-events `Events`), a list of
    records, or one record: `(record, None)` each, or `(what was there, reason)` for a member
    that cannot be read (a `CloudTrailEvent` that is not JSON)."""
    if isinstance(value, dict) and isinstance(value.get("Records"), list):
        yield from ((record, None) for record in value["Records"])
    elif isinstance(value, dict) and isinstance(value.get("Events"), list):
        for event in value["Events"]:
            text = event.get("CloudTrailEvent") if isinstance(event, dict) else None
            if not isinstance(text, str):
                yield event, "a lookup-events member without a CloudTrailEvent string"
                continue
            try:
                yield jsontext.loads(text), None
            except jsontext.JsonError as exc:
                yield text, f"CloudTrailEvent is not JSON: {exc}"
    elif isinstance(value, list):
        yield from ((record, None) for record in value)
    else:
        yield value, None

"""Webhook endpoints: one per source, each with its adapter and its own secret; all share the
ingest path, so every source is idempotent by its provider's event id and nothing is dropped."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field
from temporalio.client import Client

from api.body import decode_payload, read_capped
from api.deps import ConfigDep, RulesDep, SettingsDep, TemporalDep, webhook_auth
from powertrip.config import PowertripConfig
from powertrip.ingest import ItemResult, process
from powertrip.rules import RuleSet
from powertrip.settings import Settings
from powertrip.sources import ParsedItem, PayloadError
from powertrip.sources.cloudwatch import parse_cloudwatch
from powertrip.sources.eventbridge import parse_eventbridge
from powertrip.sources.generic import parse_generic, parse_ndjson
from powertrip.sources.papertrail import parse_papertrail
from powertrip.sources.sns import (
    SnsRejected,
    SnsVerifier,
    parse_notification,
    parse_sns_message,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed body (the reason says which part)"},
    401: {"description": "Missing or wrong token for this source"},
    413: {"description": "Body too large"},
    415: {"description": "Unsupported content type"},
}


class WebhookResponse(BaseModel):
    results: list[ItemResult] = Field(description="One per record, by its index in the batch.")
    summary: dict[str, int] = Field(
        default_factory=dict, description="How many records ended started/duplicate/unmatched/…"
    )


class SnsResponse(WebhookResponse):
    type: str = Field(description="The SNS message type handled.")
    topic: str
    confirmed: bool = False


def _ignored_sources(config: PowertripConfig) -> frozenset[str]:
    return frozenset(name for name, options in config.sources.items() if options.ignore_unmatched)


async def _ingest(
    items: list[ParsedItem],
    settings: Settings,
    config: PowertripConfig,
    rules: RuleSet,
    temporal: Client,
) -> WebhookResponse:
    results = await process(
        temporal,
        rules,
        items,
        settings.task_queue,
        settings.start_concurrency,
        ignore_unmatched=_ignored_sources(config),
    )
    return WebhookResponse(results=results, summary=dict(Counter(r.status.value for r in results)))


def _bad_request(exc: PayloadError) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, str(exc))


@router.post(
    "/papertrail",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookResponse,
    summary="Papertrail search alert",
    dependencies=[webhook_auth("papertrail")],
    responses={**ERRORS, 422: {"description": "Not a Papertrail search alert"}},
)
async def papertrail(
    request: Request,
    settings: SettingsDep,
    config: ConfigDep,
    rules: RulesDep,
    temporal: TemporalDep,
) -> WebhookResponse:
    """Papertrail posts `payload=<json>` form-encoded; a plain JSON body of the same shape works
    too. Each event gets its own result: started, duplicate, unmatched or invalid."""
    body = await read_capped(request, settings.max_body_bytes)
    try:
        items = parse_papertrail(decode_payload(request, body))
    except PayloadError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return await _ingest(items, settings, config, rules, temporal)


@router.post(
    "/cloudwatch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookResponse,
    summary="CloudWatch Logs subscription data",
    dependencies=[webhook_auth("cloudwatch")],
    responses=ERRORS,
)
async def cloudwatch(
    request: Request,
    settings: SettingsDep,
    config: ConfigDep,
    rules: RulesDep,
    temporal: TemporalDep,
) -> WebhookResponse:
    """`{"awslogs": {"data": base64(gzip(JSON))}}` (what a subscription delivers, e.g. through a
    forwarding Lambda or Firehose HTTP endpoint). Log event ids key the events;
    `CONTROL_MESSAGE`s are answered with no results."""
    body = await read_capped(request, settings.max_body_bytes)
    try:
        items = parse_cloudwatch(decode_payload(request, body))
    except PayloadError as exc:
        raise _bad_request(exc) from exc
    return await _ingest(items, settings, config, rules, temporal)


def get_sns_verifier(request: Request) -> SnsVerifier:
    """One verifier (and certificate cache) per app; tests install one with a local fetcher."""
    verifier = getattr(request.app.state, "sns_verifier", None)
    if verifier is None:
        verifier = request.app.state.sns_verifier = SnsVerifier()
    return verifier


@router.post(
    "/sns",
    response_model=SnsResponse,
    summary="Amazon SNS HTTP(S) subscription",
    dependencies=[webhook_auth("sns")],
    responses={
        **ERRORS,
        403: {"description": "Topic not configured, bad signing certificate URL or signature"},
    },
)
async def sns(
    request: Request,
    settings: SettingsDep,
    config: ConfigDep,
    rules: RulesDep,
    temporal: TemporalDep,
) -> SnsResponse:
    """Every message's signature is verified; a `SubscriptionConfirmation` is confirmed only for
    a topic in `POWERTRIP_SNS_TOPIC_ARNS`. Notifications may carry CloudWatch Logs subscription
    data, EventBridge events or a plain (syslog) line."""
    body = await read_capped(request, settings.max_body_bytes)
    try:
        message = parse_sns_message(
            decode_payload(request, body), request.headers.get("x-amz-sns-message-type")
        )
    except PayloadError as exc:
        raise _bad_request(exc) from exc
    verifier = get_sns_verifier(request)
    try:
        await verifier.verify(message, settings.sns_topic_arns)
    except SnsRejected as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    reply = SnsResponse(type=message.Type, topic=message.TopicArn, results=[])
    if message.Type == "SubscriptionConfirmation":
        try:
            await verifier.confirm(message)
        except SnsRejected as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
        except PayloadError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc
        return reply.model_copy(update={"confirmed": True})
    if message.Type == "UnsubscribeConfirmation":
        return reply  # acknowledged; we never resubscribe on our own
    try:
        items = parse_notification(message)
    except PayloadError as exc:
        raise _bad_request(exc) from exc
    ingested = await _ingest(items, settings, config, rules, temporal)
    return reply.model_copy(update={"results": ingested.results, "summary": ingested.summary})


@router.post(
    "/eventbridge",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookResponse,
    summary="EventBridge API destination (CloudTrail)",
    dependencies=[webhook_auth("eventbridge")],
    responses=ERRORS,
)
async def eventbridge(
    request: Request,
    settings: SettingsDep,
    config: ConfigDep,
    rules: RulesDep,
    temporal: TemporalDep,
) -> WebhookResponse:
    """One EventBridge event or a list; CloudTrail events are keyed by `detail.eventID`."""
    body = await read_capped(request, settings.max_body_bytes)
    try:
        items = parse_eventbridge(decode_payload(request, body))
    except PayloadError as exc:
        raise _bad_request(exc) from exc
    return await _ingest(items, settings, config, rules, temporal)


@router.post(
    "/json",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookResponse,
    summary="Generic JSON or NDJSON",
    dependencies=[webhook_auth("json")],
    responses=ERRORS,
)
async def generic_json(
    request: Request,
    settings: SettingsDep,
    config: ConfigDep,
    rules: RulesDep,
    temporal: TemporalDep,
) -> WebhookResponse:
    """A JSON object, a list, `{"events": [...]}` or NDJSON (one object a line), each
    `{"id", "time", "host", "program", "message", ...fields}`. For example:
    `curl -H "Authorization: Bearer $TOKEN" -d '{"host":"db-1","program":"breakglass",
    "message":"BREAKGLASS user=alice"}' https://powertrip.example.com/webhooks/json`."""
    body = await read_capped(request, settings.max_body_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type in NDJSON_TYPES or _looks_like_ndjson(body):
            items = parse_ndjson(body)
        else:
            items = parse_generic(decode_payload(request, body))
    except PayloadError as exc:
        raise _bad_request(exc) from exc
    return await _ingest(items, settings, config, rules, temporal)


def _looks_like_ndjson(body: bytes) -> bool:
    """Several lines whose first is a complete JSON object (pretty-printed JSON's is not)."""
    lines = [line for line in body.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    try:
        return isinstance(json.loads(lines[0]), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False

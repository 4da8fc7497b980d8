"""Webhook endpoints: one per source, each with its adapter and its own secret; all share the
ingest path, so every source is idempotent by its provider's event id and nothing is dropped."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from api.body import decode_payload, read_capped
from api.deps import ConfigDep, RulesDep, SettingsDep, TemporalDep, webhook_auth
from powertrip.ingest import ItemResult, process
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
    413: {
        "description": "Body too large, or more records than `POWERTRIP_MAX_RECORDS_PER_REQUEST`"
    },
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


class Ingest:
    """One webhook request's path: capped body, the source's parser, then the shared ingest."""

    def __init__(
        self,
        request: Request,
        settings: SettingsDep,
        config: ConfigDep,
        rules: RulesDep,
        temporal: TemporalDep,
    ) -> None:
        self.request = request
        self.settings = settings
        self.config = config
        self.rules = rules
        self.temporal = temporal

    async def body(self) -> bytes:
        return await read_capped(self.request, self.settings.max_body_bytes)

    async def parse(
        self,
        parser: Callable[[Any], list[ParsedItem]],
        invalid_status: int = status.HTTP_400_BAD_REQUEST,
    ) -> list[ParsedItem]:
        payload = decode_payload(self.request, await self.body())
        return parsed_or_4xx(lambda: parser(payload), invalid_status)

    async def run(self, items: list[ParsedItem]) -> WebhookResponse:
        limit = self.settings.max_records_per_request
        if len(items) > limit:
            # Refused whole, before any record starts: a sender that splits the batch and
            # retries loses nothing, and one request cannot start unbounded work.
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"{len(items)} records in one request; at most {limit} "
                "(POWERTRIP_MAX_RECORDS_PER_REQUEST): send them in smaller batches",
            )
        ignored = frozenset(
            name for name, options in self.config.sources.items() if options.ignore_unmatched
        )
        results = await process(
            self.temporal,
            self.rules,
            items,
            self.settings.task_queue,
            self.settings.start_concurrency,
            ignore_unmatched=ignored,
        )
        return WebhookResponse(
            results=results, summary=dict(Counter(r.status.value for r in results))
        )


IngestDep = Annotated[Ingest, Depends(Ingest)]
T = TypeVar("T")


def parsed_or_4xx(parse: Callable[[], T], invalid_status: int = 400) -> T:
    try:
        return parse()
    except PayloadError as exc:
        raise HTTPException(invalid_status, str(exc)) from exc


@router.post(
    "/papertrail",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookResponse,
    summary="Papertrail search alert",
    dependencies=[webhook_auth("papertrail")],
    responses={**ERRORS, 422: {"description": "Not a Papertrail search alert"}},
)
async def papertrail(ingest: IngestDep) -> WebhookResponse:
    """Papertrail posts `payload=<json>` form-encoded; a plain JSON body of the same shape works
    too. Each event gets its own result: started, duplicate, unmatched or invalid."""
    items = await ingest.parse(parse_papertrail, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return await ingest.run(items)


@router.post(
    "/cloudwatch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookResponse,
    summary="CloudWatch Logs subscription data",
    dependencies=[webhook_auth("cloudwatch")],
    responses=ERRORS,
)
async def cloudwatch(ingest: IngestDep) -> WebhookResponse:
    """`{"awslogs": {"data": base64(gzip(JSON))}}` (what a subscription delivers, e.g. through a
    forwarding Lambda or Firehose HTTP endpoint). Log event ids key the events;
    `CONTROL_MESSAGE`s are answered with no results."""
    return await ingest.run(await ingest.parse(parse_cloudwatch))


def get_sns_verifier(request: Request) -> SnsVerifier:
    """One verifier (and certificate cache) per app; tests install one with a local fetcher."""
    verifier = getattr(request.app.state, "sns_verifier", None)
    if verifier is None:
        settings = request.app.state.settings
        verifier = request.app.state.sns_verifier = SnsVerifier(max_age=settings.sns_max_age)
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
async def sns(ingest: IngestDep) -> SnsResponse:
    """Every message's signature is verified; a `SubscriptionConfirmation` is confirmed only for
    a topic in `POWERTRIP_SNS_TOPIC_ARNS`. Notifications may carry CloudWatch Logs subscription
    data, EventBridge events or a plain (syslog) line."""
    request = ingest.request
    payload = decode_payload(request, await ingest.body())
    message = parsed_or_4xx(
        lambda: parse_sns_message(payload, request.headers.get("x-amz-sns-message-type"))
    )
    verifier = get_sns_verifier(request)
    try:
        await verifier.verify(message, ingest.settings.sns_topic_arns)
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
    ingested = await ingest.run(parsed_or_4xx(lambda: parse_notification(message)))
    return reply.model_copy(update={"results": ingested.results, "summary": ingested.summary})


@router.post(
    "/eventbridge",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookResponse,
    summary="EventBridge API destination (CloudTrail)",
    dependencies=[webhook_auth("eventbridge")],
    responses=ERRORS,
)
async def eventbridge(ingest: IngestDep) -> WebhookResponse:
    """One EventBridge event or a list; CloudTrail events are keyed by `detail.eventID`."""
    return await ingest.run(await ingest.parse(parse_eventbridge))


@router.post(
    "/json",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookResponse,
    summary="Generic JSON or NDJSON",
    dependencies=[webhook_auth("json")],
    responses=ERRORS,
)
async def generic_json(ingest: IngestDep) -> WebhookResponse:
    """A JSON object, a list, `{"events": [...]}` or NDJSON (one object a line), each
    `{"id", "time", "host", "program", "message", ...fields}`. For example:
    `curl -H "Authorization: Bearer $TOKEN" -d '{"host":"db-1","program":"breakglass",
    "message":"BREAKGLASS user=alice"}' https://powertrip.example.com/webhooks/json`."""
    body = await ingest.body()
    content_type = ingest.request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in NDJSON_TYPES or _looks_like_ndjson(body):
        items = parsed_or_4xx(lambda: parse_ndjson(body))
    else:
        payload = decode_payload(ingest.request, body)
        items = parsed_or_4xx(lambda: parse_generic(payload))
    return await ingest.run(items)


def _looks_like_ndjson(body: bytes) -> bool:
    """Several lines whose first is a complete JSON object (pretty-printed JSON's is not)."""
    lines = [line for line in body.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    try:
        return isinstance(json.loads(lines[0]), dict)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return False

"""Webhook endpoints: one per source, each with its adapter (`powertrip.sources`) and its own
secret; all share the recognise path (`powertrip.services.recognise`), so every source is
idempotent by its provider's event id and nothing is dropped. A new source: its parser in
`powertrip.sources`, one route here with `@receives(...)`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from pydantic import BaseModel, Field

from api.body import decode_payload, read_capped
from api.deps import ConfigDep, RulesDep, SettingsDep, TemporalDep, webhook_auth
from api.metrics import count_ingest
from powertrip import jsontext
from powertrip.offload import off_loop
from powertrip.services.recognise import ItemResult, process
from powertrip.sources import ParsedItem, PayloadError, check_idempotency_key, json_text
from powertrip.sources.cloudwatch import parse_cloudwatch
from powertrip.sources.eventbridge import parse_eventbridge
from powertrip.sources.generic import (
    Reading,
    iter_json_values,
    json_value_items,
    parse_generic,
    parse_journal_export,
    parse_text_lines,
)
from powertrip.sources.journal import CONTENT_TYPE as JOURNAL_EXPORT_TYPE
from powertrip.sources.journal import looks_like_export
from powertrip.sources.papertrail import parse_papertrail
from powertrip.sources.sns import (
    SnsMessage,
    SnsRejected,
    SnsVerifier,
    parse_notification,
    parse_sns_message,
)
from powertrip.sources.wazuh import parse_wazuh

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
    """What a webhook answers: one result per record, and how many ended each way."""

    results: list[ItemResult] = Field(description="One per record, by its index in the batch.")
    summary: dict[str, int] = Field(
        default_factory=dict, description="How many records ended started/duplicate/unmatched/…"
    )


class SnsResponse(WebhookResponse):
    """What the SNS endpoint answers: the message type handled, and the records' results."""

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
        """The request body, capped at `POWERTRIP_MAX_BODY_BYTES` (a 413 beyond)."""
        return await read_capped(self.request, self.settings.max_body_bytes)

    def now(self) -> datetime:
        """When the request arrived (`app.state.clock` stands in for the clock in tests)."""
        clock = getattr(self.request.app.state, "clock", None)
        return clock() if clock is not None else datetime.now(UTC)

    async def parse(
        self,
        parser: Callable[[Any], list[ParsedItem]],
        invalid_status: int = status.HTTP_400_BAD_REQUEST,
    ) -> list[ParsedItem]:
        """The body's records through `parser`, decoded and parsed off the event loop; a
        payload it cannot use is `invalid_status`."""
        body = await self.body()

        def parse() -> list[ParsedItem]:
            payload = decode_payload(self.request, body)
            return parsed_or_4xx(lambda: parser(payload), invalid_status)

        return await off_loop(parse)

    async def run(self, items: list[ParsedItem], source: str) -> WebhookResponse:
        """Ingest the records `source`'s endpoint received (invalid ones count under it)."""
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
            source=source,
        )
        await off_loop(count_ingest, items, results, source)
        return WebhookResponse(
            results=results, summary=dict(Counter(r.status.value for r in results))
        )


IngestDep = Annotated[Ingest, Depends(Ingest)]
T = TypeVar("T")


def parsed_or_4xx(parse: Callable[[], T], invalid_status: int = 400) -> T:
    """`parse()`, or an HTTP error (`invalid_status`) saying why the payload is unusable."""
    try:
        return parse()
    except PayloadError as exc:
        raise HTTPException(invalid_status, str(exc)) from exc


def receives(
    source: str, summary: str, responses: dict[int | str, dict[str, Any]] | None = None
) -> Any:
    """The route of `source`'s webhook: `POST /webhooks/<source>`, its own secret, 202 with a
    result for every record."""
    return router.post(
        f"/{source}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=WebhookResponse,
        summary=summary,
        dependencies=[webhook_auth(source)],
        responses={**ERRORS, **(responses or {})},
    )


@receives(
    "papertrail",
    "Papertrail search alert",
    {422: {"description": "Not a Papertrail search alert"}},
)
async def papertrail(ingest: IngestDep) -> WebhookResponse:
    """Papertrail posts `payload=<json>` form-encoded; a plain JSON body of the same shape works
    too. Each event gets its own result: started, duplicate, unmatched or invalid."""
    items = await ingest.parse(parse_papertrail, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return await ingest.run(items, "papertrail")


@receives("cloudwatch", "CloudWatch Logs subscription data")
async def cloudwatch(ingest: IngestDep) -> WebhookResponse:
    """`{"awslogs": {"data": base64(gzip(JSON))}}` (what a subscription delivers, e.g. through a
    forwarding Lambda or Firehose HTTP endpoint). Log event ids key the events;
    `CONTROL_MESSAGE`s are answered with no results. CloudTrail records count as CloudTrail only
    in the log groups of `POWERTRIP_CLOUDTRAIL_LOG_GROUPS`."""
    groups = ingest.settings.cloudtrail_log_groups
    items = await ingest.parse(lambda payload: parse_cloudwatch(payload, groups))
    return await ingest.run(items, "cloudwatch")


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
    body = await ingest.body()

    def message_of() -> SnsMessage:
        payload = decode_payload(request, body)
        kind = request.headers.get("x-amz-sns-message-type")
        return parsed_or_4xx(lambda: parse_sns_message(payload, kind))

    message = await off_loop(message_of)
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
    settings = ingest.settings
    items = await off_loop(
        parsed_or_4xx,
        lambda: parse_notification(
            message, settings.cloudtrail_sns_topic_arns, settings.cloudtrail_log_groups
        ),
    )
    ingested = await ingest.run(items, "sns")
    return reply.model_copy(update={"results": ingested.results, "summary": ingested.summary})


@receives("eventbridge", "EventBridge API destination (CloudTrail)")
async def eventbridge(ingest: IngestDep) -> WebhookResponse:
    """One EventBridge event or a list; CloudTrail events are keyed by `detail.eventID`."""
    return await ingest.run(await ingest.parse(parse_eventbridge), "eventbridge")


@receives("wazuh", "Wazuh / OSSEC alerts (a manager's integrator)")
async def wazuh(ingest: IngestDep) -> WebhookResponse:
    """One alert as in `alerts.json` (what a custom integration posts), a list, or Shuffle's
    `{"all_fields": <alert>}`: the line the alert fired on (`full_log`) is matched by the same
    rules as any other route, and the event is keyed by the alert id, `wazuh-<id>`."""
    return await ingest.run(await ingest.parse(parse_wazuh), "wazuh")


@receives("json", "Generic JSON, NDJSON, a shipper's JSON or raw log lines")
async def generic_json(
    ingest: IngestDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Names the records of this request (`<key>`, or `<key>:<index>` in a "
            "batch) when they have no `id`: a retry with the same key is a duplicate."
        ),
    ] = None,
) -> WebhookResponse:
    """A JSON object, a list, `{"events": [...]}`, NDJSON (one object a line) or JSON values one
    after another, each `{"id", "time", "host", "program", "message", ...fields}` or a log
    shipper's own record (journald, ECS, rsyslog, Logstash, Vector, Fluent Bit, Splunk HEC, GELF,
    NXLog; `sources.json.fields` maps other names); raw log lines as `text/plain`; or the
    journal's export format (`application/vnd.fdo.journal`, `journalctl -o export`). For example:
    `curl -H "Authorization: Bearer $TOKEN" -d '{"host":"db-1","program":"breakglass",
    "message":"BREAKGLASS user=alice"}' https://powertrip.example.com/webhooks/json`."""
    key = parsed_or_4xx(lambda: check_idempotency_key(idempotency_key)) if idempotency_key else None
    body = await ingest.body()
    reading = Reading(ingest.config.source_options("json").fields, ingest.now(), key)
    items = await off_loop(_generic_items, ingest.request, body, reading)
    return await ingest.run(items, "json")


def _generic_items(request: Request, body: bytes, reading: Reading) -> list[ParsedItem]:
    """The records of a `/webhooks/json` body, whichever of its shapes it is (CPU-bound: run
    off the event loop).

    Only the body as a whole decides between one JSON document and records one after another:
    a body that is one JSON value is that document, anything else is read record by record
    (`iter_json_values`; `text/plain` line by line), so no record's shape, first or not, decides
    how the others are read."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    text = body.lstrip()
    if content_type == JOURNAL_EXPORT_TYPE or looks_like_export(text[:64].decode(errors="replace")):
        return parsed_or_4xx(lambda: parse_journal_export(body, reading))
    ndjson = content_type in NDJSON_TYPES
    if not ndjson and _one_document(body, records_only=content_type == "text/plain"):
        return parsed_or_4xx(lambda: parse_generic(decode_payload(request, body), reading))
    if content_type == "text/plain":
        return parsed_or_4xx(lambda: parse_text_lines(body, reading))
    values = list(iter_json_values(json_text(body)))
    if ndjson or any(value.error is None for value in values):
        return parsed_or_4xx(lambda: json_value_items(values, reading))
    # Not one JSON value in it: a form's `payload=<json>`, or the 4xx saying why it is no JSON.
    return parsed_or_4xx(lambda: parse_generic(decode_payload(request, body), reading))


def _one_document(body: bytes, records_only: bool) -> bool:
    """Whether the whole body is one JSON value (`records_only`: an object or a list, as a
    `text/plain` body of JSON is, which SNS for one labels so; a lone `42` there is a line)."""
    try:
        value = jsontext.loads(json_text(body))
    except jsontext.JsonError:
        return False
    return isinstance(value, dict | list) or not records_only

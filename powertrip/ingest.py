"""From parsed records to started workflows: the one path every source and backfill takes."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from powertrip import observability
from powertrip import temporal as attributes
from powertrip.approvals import ApprovalInput, EventRecord
from powertrip.conflicts import ConflictReport, conflict_workflow_id
from powertrip.hosts import host_key
from powertrip.identity import (
    Occurrence,
    RecentStarts,
    content_digest,
    identity_of,
)
from powertrip.known import find_known
from powertrip.models import EventStatus, RawEvent, SecurityEvent
from powertrip.rules import RuleSet
from powertrip.sources import ParsedItem
from powertrip.unrecognised import invalid_sample, invalid_shape, message_shape, request_review
from workflows.approval import ApprovalWorkflow
from workflows.conflict import ConflictWorkflow


class ResultStatus(StrEnum):
    STARTED = "started"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    UNMATCHED = "unmatched"
    INVALID = "invalid"
    NON_EVENT = "non_event"
    """A well-known record that is no action to ask about (a failed login, PAM bookkeeping):
    counted under its rule, never reviewed."""


# Per process and namespace (identity is namespace-wide): what visibility does not show yet
# (powertrip.identity.RecentStarts).
_RECENT_STARTS: dict[str, RecentStarts] = {}


def recent_starts(namespace: str) -> RecentStarts:
    return _RECENT_STARTS.setdefault(namespace, RecentStarts())


class ItemResult(BaseModel):
    index: int
    status: ResultStatus
    event_id: str | None = None
    rule_id: str | None = None
    reason: str | None = None
    stale: bool = Field(
        default=False, description="Older than the backfill's stale age: no DM, digest only."
    )
    review: str | None = Field(
        default=None,
        description="Unmatched or invalid: `requested` (a review was asked of the security "
        "channel), `already_requested` (same message shape this hour) or `ignored` (source "
        "configured so, unmatched only).",
    )
    review_id: str | None = Field(
        default=None, description="Unmatched: the workflow id of the review for its shape."
    )
    # For callers that report on what they started (the backfill's stale digest); never sent.
    event: SecurityEvent | None = Field(default=None, exclude=True)


def summary_for(event: SecurityEvent) -> str:
    """What the Temporal UI list shows for this workflow."""
    where = f" on {event.host}" if event.host else ""
    origin = f" from {event.address}" if event.address else ""
    return f"{event.action} as {event.actor}{where}{origin}"


def details_for(event: SecurityEvent) -> str:
    """The Temporal UI's details pane: the facts an investigator checks first, then the line."""
    facts = [
        f"**{event.rule_title}** (`{event.rule_id}`) from `{event.source}`",
        f"at {event.occurred_at.isoformat()}, provider id `{event.provider_id}`",
    ]
    if event.message:
        facts.append(f"```\n{event.message}\n```")
    return "\n\n".join(facts)


def search_attributes_for(
    event: SecurityEvent, status: EventStatus = EventStatus.PENDING
) -> TypedSearchAttributes:
    """What Temporal visibility (API, CLI, Web UI) filters events by."""
    pairs: list[SearchAttributePair] = [
        SearchAttributePair(attributes.STATUS, status.value),
        SearchAttributePair(attributes.ACTOR, _keyword(event.actor)),
        SearchAttributePair(attributes.RULE, event.rule_id),
        SearchAttributePair(attributes.SOURCE, event.source),
        SearchAttributePair(attributes.EVENT_TIME, event.occurred_at),
    ]
    if event.host:
        pairs.append(SearchAttributePair(attributes.HOST, _keyword(event.host)))
        pairs.append(SearchAttributePair(attributes.HOST_KEY, _keyword(host_key(event.host))))
    if (identity := identity_of(event)) is not None:
        pairs.append(SearchAttributePair(attributes.IDENTITY, identity))
    return TypedSearchAttributes(pairs)


def _keyword(value: str, limit: int = 1024) -> str:
    """Temporal refuses a keyword over 2 KiB, which would refuse the event itself: a crafted
    5,000-character host must still be asked about. The full value stays in the memo."""
    encoded = value.encode()
    return value if len(encoded) <= limit else encoded[:limit].decode(errors="ignore") + "…"


async def start_approval(
    client: Client,
    event: SecurityEvent,
    task_queue: str,
    stale: bool = False,
) -> ResultStatus:
    """Start the event's workflow unless one with its id ever existed (running or closed).

    The event's content digest is kept with it (memo `content`), and an id that exists with
    another digest is a `CONFLICT`, reported to the security channel, not a duplicate.
    """
    content = content_digest(event)
    memo: dict[str, object] = {"record": EventRecord(event=event), "content": content}
    try:
        await client.start_workflow(
            ApprovalWorkflow.run,
            ApprovalInput(event=event, stale=stale),
            id=event.event_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=search_attributes_for(event),
            memo=memo,
            static_summary=summary_for(event),
            static_details=details_for(event),
        )
    except WorkflowAlreadyStartedError:
        return await _duplicate_or_conflict(client, event, content, task_queue)
    return ResultStatus.STARTED


async def _duplicate_or_conflict(
    client: Client, event: SecurityEvent, content: str, task_queue: str
) -> ResultStatus:
    """Same id again: a retry when the content is the same (or was recorded without a digest,
    before digests were kept); otherwise a conflict, told to the security channel once."""
    description = await client.get_workflow_handle(event.event_id).describe()
    memo = await description.memo()
    recorded = memo.get("content")
    if recorded is None or recorded == content:
        return ResultStatus.DUPLICATE
    first = await description.memo_value("record", None, type_hint=EventRecord)
    report = ConflictReport(
        event_id=event.event_id,
        recorded=first.event if isinstance(first, EventRecord) else None,
        arriving=event,
        arriving_digest=content,
    )
    try:
        await client.start_workflow(
            ConflictWorkflow.run,
            report,
            id=conflict_workflow_id(event.event_id, content),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"conflicting delivery for {event.event_id}",
        )
    except WorkflowAlreadyStartedError:
        pass  # this conflicting content was reported already
    return ResultStatus.CONFLICT


def recognise(rules: RuleSet, item: ParsedItem) -> ItemResult | SecurityEvent | None:
    """The record's event, None (no rule recognises it), or its `invalid` result."""
    if item.raw is None:
        return ItemResult(index=item.index, status=ResultStatus.INVALID, reason=item.error)
    try:
        return rules.recognise(item.raw)
    except ValueError as exc:
        return ItemResult(index=item.index, status=ResultStatus.INVALID, reason=str(exc))


def by_identity(
    items: Sequence[ParsedItem], recognised: Sequence[ItemResult | SecurityEvent | None]
) -> list[SecurityEvent | None]:
    """The events to deduplicate by natural identity (powertrip.identity), by position; a
    CloudTrail eventID already names its record on every route."""
    return [
        found
        if isinstance(found, SecurityEvent) and item.raw and item.raw.id_namespace is None
        else None
        for item, found in zip(items, recognised, strict=True)
    ]


async def process(
    client: Client,
    rules: RuleSet,
    items: Sequence[ParsedItem],
    task_queue: str,
    concurrency: int = 64,
    stale_before: datetime | None = None,
    ignore_unmatched: Collection[str] = frozenset(),
    source: str = "unknown",
) -> list[ItemResult]:
    """Recognise each record and start its workflow; bounded concurrency, order preserved.

    Events that happened before `stale_before` (a backfill's cut-off) start without a DM.
    Records no rule recognises are counted and, unless their source is in `ignore_unmatched`,
    sent for review (one request per message shape per hour); so are invalid records, under
    `source` (the route or backfill they came through), whatever `ignore_unmatched` says.
    Records a non-event rule knows are counted, not reviewed.
    """
    gate = asyncio.Semaphore(concurrency)
    # One review request per shape per batch: a backfill chunk of noise lines shares a handful
    # of shapes, and asking Temporal once per line would make reviews the bottleneck.
    reviews: dict[tuple[str, str], asyncio.Task[tuple[str, bool]]] = {}

    async def ask_review(raw: RawEvent, reason: str | None) -> tuple[str, bool]:
        async with gate:
            return await request_review(client, raw, task_queue, reason=reason)

    async def reviewed(result: ItemResult, raw: RawEvent, reason: str | None = None) -> ItemResult:
        key = (raw.source, invalid_shape(reason) if reason else message_shape(raw))
        first = key not in reviews
        if first:
            reviews[key] = asyncio.create_task(ask_review(raw, reason))
        review_id, new = await reviews[key]
        review = "requested" if new and first else "already_requested"
        return result.model_copy(update={"review": review, "review_id": review_id})

    async def unmatched(index: int, raw: RawEvent) -> ItemResult:
        result = ItemResult(
            index=index, status=ResultStatus.UNMATCHED, reason="no rule matched the message"
        )
        if raw.source in ignore_unmatched:
            return result.model_copy(update={"review": "ignored"})
        return await reviewed(result, raw)

    async def invalid(index: int, reason: str, sample: str | None) -> ItemResult:
        result = ItemResult(index=index, status=ResultStatus.INVALID, reason=reason)
        return await reviewed(result, invalid_sample(source, reason, sample), reason)

    recognised = [recognise(rules, item) for item in items]
    natural = by_identity(items, recognised)
    known = await find_known(client, natural) if any(natural) else [None] * len(items)

    async def start(
        item: ParsedItem, event: SecurityEvent, by_identity: bool, known_as: str | None
    ) -> ItemResult:
        stale = stale_before is not None and event.occurred_at < stale_before
        occurrence = Occurrence.of(event) if by_identity else None
        if occurrence is None:
            async with gate:
                status = await start_approval(client, event, task_queue, stale)
            return _started(item, event, status, stale)
        recent = recent_starts(client.namespace)
        async with recent.lock(occurrence.identity):
            existing = known_as or recent.find(occurrence)
            if existing is not None:
                return duplicate_of(item, event, existing, stale)
            async with gate:
                status = await start_approval(client, event, task_queue, stale)
            if status is ResultStatus.STARTED:
                recent.remember(occurrence)
        return _started(item, event, status, stale)

    async def one(position: int, item: ParsedItem) -> ItemResult:
        found = recognised[position]
        if isinstance(found, ItemResult):
            sample = item.raw.message if item.raw is not None else item.sample
            return await invalid(item.index, found.reason or "invalid", sample)
        if found is None:
            assert item.raw is not None
            non_event = rules.non_event(item.raw)
            if non_event is not None:
                return ItemResult(
                    index=item.index,
                    status=ResultStatus.NON_EVENT,
                    rule_id=non_event.id,
                    reason=f"a known non-event: {non_event.title}",
                )
            return await unmatched(item.index, item.raw)
        try:
            return await start(item, found, natural[position] is not None, known[position])
        except RPCError as exc:
            # Temporal refuses this record alone (e.g. a host or actor over the search attribute
            # size limit): report it, and let the rest of the batch start. Anything else (Temporal
            # unavailable) still fails the request so the sender retries.
            if exc.status is not RPCStatusCode.INVALID_ARGUMENT:
                raise
            return ItemResult(
                index=item.index,
                status=ResultStatus.INVALID,
                event_id=found.event_id,
                rule_id=found.rule_id,
                reason=f"Temporal refused the event: {exc.message}",
            )

    results = list(await asyncio.gather(*(one(p, item) for p, item in enumerate(items))))
    observability.count_ingest(items, results, source)
    return results


_REASONS = {
    ResultStatus.DUPLICATE: "already received (same source and provider id)",
    ResultStatus.CONFLICT: "this id was received before with different content: not started; "
    "reported to the security channel",
}


def duplicate_of(
    item: ParsedItem, event: SecurityEvent, existing: str, stale: bool = False
) -> ItemResult:
    """`event` was already received as `existing`: by its id, or as the same action by another
    route."""
    reason = (
        _REASONS[ResultStatus.DUPLICATE]
        if existing == event.event_id
        else f"already received as {existing}: the same action by another route "
        "(same natural identity within its time tolerance)"
    )
    return ItemResult(
        index=item.index,
        status=ResultStatus.DUPLICATE,
        event_id=existing,
        rule_id=event.rule_id,
        reason=reason,
        stale=stale,
        event=event,
    )


def _started(
    item: ParsedItem, event: SecurityEvent, status: ResultStatus, stale: bool
) -> ItemResult:
    return ItemResult(
        index=item.index,
        status=status,
        event_id=event.event_id,
        rule_id=event.rule_id,
        reason=_REASONS.get(status),
        stale=stale,
        event=event,
    )

"""From parsed records to started workflows: the one path every webhook, poll and backfill (dry or
not) takes.

`process` recognises each `ParsedItem` with the rules and answers one `ItemResult` per record, in
order: the event started (`services.starts.start_approval`), a duplicate (same id, or the same
action by another route: `services.known`), a conflict, a record no rule recognises or that
could not be read (surfaced for review, never dropped), or a known non-event. A dry run answers
the same without starting anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from powertrip.identity import Occurrence, RecentStarts
from powertrip.models import RawEvent, SecurityEvent
from powertrip.offload import off_loop
from powertrip.rules import Rule, RuleSet
from powertrip.services.known import find_known
from powertrip.services.starts import ResultStatus, request_review, start_approval
from powertrip.sources import ParsedItem
from powertrip.unrecognised import invalid_sample, invalid_shape, message_shape

log = logging.getLogger("powertrip.events")

DRY_RUN = "dry run: would start"
_SLICE = 256  # records `process` has in flight together (starts are bounded by `concurrency`)
DRY_RUN_UNCHECKED = "dry run: would start unless already known (Temporal not reached)"


# Per process and namespace (identity is namespace-wide): what visibility does not show yet
# (powertrip.identity.RecentStarts).
_RECENT_STARTS: dict[str, RecentStarts] = {}


class Stopped(Exception):
    """`process` was told to stop (`stop` set): `results` are the records it finished, in order
    of their index; the rest were not started (nor looked up, nor reviewed)."""

    def __init__(self, results: list[ItemResult]) -> None:
        super().__init__(f"stopped after {len(results)} records")
        self.results = results


class _NotBegun(Exception):
    """Within `process`: `stop` was set before this record's start or lookup was sent."""


def recent_starts(namespace: str) -> RecentStarts:
    """This process's recent starts in `namespace` (visibility lags a start by a moment)."""
    return _RECENT_STARTS.setdefault(namespace, RecentStarts())


class ItemResult(BaseModel):
    """What became of one record (`index`: its position in the batch)."""

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


def recognise(rules: RuleSet, item: ParsedItem) -> ItemResult | SecurityEvent | None:
    """The record's event, None (no rule recognises it), its `invalid` result, or for a line
    known to be no record (`ParsedItem.annotation`) its `non_event` result."""
    if item.annotation is not None:
        return ItemResult(index=item.index, status=ResultStatus.NON_EVENT, reason=item.annotation)
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


@dataclass(frozen=True)
class Plan:
    """What the rules make of one record, worked out off the event loop (`plan`): `found` is
    its event, its `invalid` result, or None (no event rule); for no event, the non-event rule
    that knows it; for a record to review (unmatched or invalid), what the review shows and the
    shape that groups it with others."""

    found: ItemResult | SecurityEvent | None
    non_event: Rule | None = None
    review: RawEvent | None = None
    shape: str | None = None


def plan(rules: RuleSet, items: Sequence[ParsedItem], source: str) -> list[Plan]:
    """Every record's `Plan`: the pure, CPU-bound part of `process` (rules, non-event rules,
    review shapes), which `process` runs off the event loop. `source`: the route invalid records
    are reviewed under."""
    plans = []
    for item in items:
        found = recognise(rules, item)
        if isinstance(found, ItemResult) and found.status is ResultStatus.NON_EVENT:
            plans.append(Plan(found))  # an annotation: answered as it is, never reviewed
        elif isinstance(found, ItemResult):
            reason = found.reason or "invalid"
            sample = item.raw.message if item.raw is not None else item.sample
            review = invalid_sample(source, reason, sample)
            plans.append(Plan(found, review=review, shape=invalid_shape(reason)))
        elif found is None:
            assert item.raw is not None
            known = rules.non_event(item.raw)
            shape = None if known else message_shape(item.raw)
            plans.append(Plan(None, non_event=known, review=item.raw, shape=shape))
        else:
            plans.append(Plan(found))
    return plans


class DryRun:
    """A dry run's memory across batches: what it would have started, so two forms of one
    line count once."""

    def __init__(self) -> None:
        self.would_start = RecentStarts()


async def process(
    client: Client | None,
    rules: RuleSet,
    items: Sequence[ParsedItem],
    task_queue: str,
    concurrency: int = 64,
    stale_before: datetime | None = None,
    ignore_unmatched: Collection[str] = frozenset(),
    source: str = "unknown",
    dry_run: DryRun | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
    stop: asyncio.Event | None = None,
) -> list[ItemResult]:
    """Recognise each record and start its workflow; bounded concurrency (`concurrency` starts
    or lookups in flight), one result per item, in order.

    Events that happened before `stale_before` (a backfill's cut-off) start without a DM.
    Records no rule recognises are counted and, unless their source is in `ignore_unmatched`,
    sent for review (one request per message shape per hour); so are invalid records, under
    `source` (the route or backfill they came through), whatever `ignore_unmatched` says.
    Records a non-event rule knows are counted, not reviewed.

    `dry_run`: start nothing and request no review; answer `started` (reason `DRY_RUN`) for what
    would start, asking Temporal which events exist already by id and by natural identity. A
    dry run may have no `client` (Temporal unreachable): every recognised event would then
    start unless known (`DRY_RUN_UNCHECKED`). Without a dry run `client` is required.

    `on_result` hears of each record's result as it is known (progress); once `stop` is set no
    further record is started, looked up or reviewed: those in flight finish, then `Stopped`
    carries the results there are.

    Raises RPCError when Temporal fails the batch (unavailable); a record Temporal refuses alone
    (INVALID_ARGUMENT, e.g. a host over the search attribute size limit) is its own `invalid`.
    """
    if dry_run is None and client is None:
        raise ValueError("only a dry run goes without Temporal")
    gate = asyncio.Semaphore(concurrency)
    # One review request per shape per batch: a backfill chunk of noise lines shares a handful
    # of shapes, and asking Temporal once per line would make reviews the bottleneck.
    reviews: dict[tuple[str, str], asyncio.Task[tuple[str, bool]]] = {}

    async def ask_review(raw: RawEvent, reason: str | None) -> tuple[str, bool]:
        assert client is not None
        async with gate:
            return await request_review(client, raw, task_queue, reason=reason)

    async def reviewed(result: ItemResult, planned: Plan, reason: str | None = None) -> ItemResult:
        if dry_run is not None:
            return result
        assert planned.review is not None and planned.shape is not None
        key = (planned.review.source, planned.shape)
        first = key not in reviews
        if first:
            reviews[key] = asyncio.create_task(ask_review(planned.review, reason))
        review_id, new = await reviews[key]
        review = "requested" if new and first else "already_requested"
        return result.model_copy(update={"review": review, "review_id": review_id})

    async def unmatched(index: int, planned: Plan) -> ItemResult:
        result = ItemResult(
            index=index, status=ResultStatus.UNMATCHED, reason="no rule matched the message"
        )
        assert planned.review is not None
        if planned.review.source in ignore_unmatched and dry_run is None:
            return result.model_copy(update={"review": "ignored"})
        return await reviewed(result, planned)

    async def invalid(index: int, planned: Plan, reason: str) -> ItemResult:
        result = ItemResult(index=index, status=ResultStatus.INVALID, reason=reason)
        return await reviewed(result, planned, reason)

    # When these copies arrived: a bound on when a zone-less one was written (identity).
    arrived = datetime.now(UTC)
    plans = await off_loop(plan, rules, items, source)
    recognised = [planned.found for planned in plans]
    natural = by_identity(items, recognised)
    known = (
        await find_known(client, natural, arrived)
        if client is not None and any(natural)
        else [None] * len(items)
    )

    async def start(
        item: ParsedItem, event: SecurityEvent, by_identity: bool, known_as: str | None
    ) -> ItemResult:
        stale = stale_before is not None and event.occurred_at < stale_before
        occurrence = Occurrence.of(event, arrived) if by_identity else None
        if dry_run is not None:
            return await would_start(item, event, occurrence, known_as, stale)
        assert client is not None
        if occurrence is None:
            async with gate:
                unless_stopped()
                status = await start_approval(client, event, task_queue, stale)
            return _started(item, event, status, stale)
        recent = recent_starts(client.namespace)
        async with recent.lock(occurrence.identity):
            existing = known_as or recent.find(occurrence)
            if existing is not None:
                return duplicate_of(item, event, existing, stale)
            async with gate:
                unless_stopped()
                status = await start_approval(client, event, task_queue, stale)
            if status is ResultStatus.STARTED:
                recent.remember(occurrence)
        return _started(item, event, status, stale)

    async def would_start(
        item: ParsedItem,
        event: SecurityEvent,
        occurrence: Occurrence | None,
        known_as: str | None,
        stale: bool,
    ) -> ItemResult:
        assert dry_run is not None
        existing: str | None = None
        if client is not None:
            async with gate:
                unless_stopped()
                existing = event.event_id if await _exists(client, event.event_id) else None
            existing = existing or known_as
        if existing is None and occurrence is not None:
            existing = dry_run.would_start.find(occurrence)
            if existing is None:
                dry_run.would_start.remember(occurrence)
        if existing is not None:
            return duplicate_of(item, event, existing, stale)
        return ItemResult(
            index=item.index,
            status=ResultStatus.STARTED,
            reason=DRY_RUN if client is not None else DRY_RUN_UNCHECKED,
            event_id=event.event_id,
            rule_id=event.rule_id,
            stale=stale,
            event=event,
        )

    def unless_stopped() -> None:
        # Checked where a record waited its turn (the gate): those already sent finish.
        if stop is not None and stop.is_set():
            raise _NotBegun

    async def one(position: int, item: ParsedItem) -> ItemResult | None:
        try:
            unless_stopped()
            result = await decide(position, item)
        except _NotBegun:
            return None  # not begun: a rerun does it
        if on_result is not None:
            on_result(result)
        return result

    async def decide(position: int, item: ParsedItem) -> ItemResult:
        planned = plans[position]
        found = planned.found
        if isinstance(found, ItemResult) and found.status is ResultStatus.NON_EVENT:
            return found
        if isinstance(found, ItemResult):
            return await invalid(item.index, planned, found.reason or "invalid")
        if found is None:
            if planned.non_event is not None:
                return ItemResult(
                    index=item.index,
                    status=ResultStatus.NON_EVENT,
                    rule_id=planned.non_event.id,
                    reason=f"a known non-event: {planned.non_event.title}",
                )
            return await unmatched(item.index, planned)
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

    finished: list[tuple[ParsedItem, ItemResult]] = []
    # In slices: each record's first step runs in the loop iteration that schedules it, and
    # 10,000 of them at once would hold the loop for a second.
    for first in range(0, len(items), _SLICE):
        positions = range(first, min(first + _SLICE, len(items)))
        answered = await asyncio.gather(*(one(p, items[p]) for p in positions))
        finished += [(items[p], r) for p, r in zip(positions, answered, strict=True) if r]
        if stop is not None and stop.is_set():
            break
    results = [result for _, result in finished]
    if dry_run is None:
        await off_loop(_log, [item for item, _ in finished], results, source)
    if len(results) < len(items):
        raise Stopped(results)
    return results


def _log(items: Sequence[ParsedItem], results: Sequence[ItemResult], route: str) -> None:
    """One log line per record: unmatched ones included, since they are surfaced to the
    security team, never dropped. A record that could not be read is logged under the `route`
    it came through."""
    for item, result in zip(items, results, strict=True):
        outcome = str(result.status)
        log.info(
            "event %s",
            outcome,
            extra={
                "event_id": result.event_id,
                "source": item.raw.source if item.raw is not None else route,
                "rule": result.rule_id or "none",
                "outcome": outcome,
                "reason": result.reason,
            },
        )


async def _exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


_REASONS = {
    ResultStatus.DUPLICATE: "already received (same source and provider id)",
    ResultStatus.CONFLICT: "this id was received before with different content: not started; "
    "reported to the security channel",
}


def duplicate_of(
    item: ParsedItem, event: SecurityEvent, existing: str, stale: bool = False
) -> ItemResult:
    """`event` was already received as `existing`: by its id, or as the same action under
    another id (by another route, or by the same one again: a host forwarding to it twice)."""
    if existing == event.event_id:
        reason = _duplicate_reason(event)
    else:
        # An event id is `<source>-<provider id>` (powertrip.models.event_id_for).
        how = (
            f"delivered again by {event.source} under another id"
            if existing.startswith(f"{event.source}-")
            else "by another route"
        )
        reason = (
            f"already received as {existing}: the same action {how} "
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


def _duplicate_reason(event: SecurityEvent) -> str:
    """Why `event` is a duplicate of its own id: received already, or an addendum of it."""
    if event.addendum_id is None:
        return _REASONS[ResultStatus.DUPLICATE]
    return (
        f"an addendum of {event.event_id} (CloudTrail re-delivered that record as eventID "
        f"{event.addendum_id}, with fields updated): already received"
    )


def _started(
    item: ParsedItem, event: SecurityEvent, status: ResultStatus, stale: bool
) -> ItemResult:
    duplicate = status is ResultStatus.DUPLICATE
    return ItemResult(
        index=item.index,
        status=status,
        event_id=event.event_id,
        rule_id=event.rule_id,
        reason=_duplicate_reason(event) if duplicate else _REASONS.get(status),
        stale=stale,
        event=event,
    )

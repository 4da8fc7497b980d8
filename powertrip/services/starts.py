"""Every workflow start, in one place: idempotent by workflow id, by name (services never import a
workflow class), with the metadata the Temporal Web UI shows.

- an event to ask about: `ApprovalWorkflow`, id the event id, REJECT_DUPLICATE; an id seen
  again with other content starts a `ConflictWorkflow` (`powertrip-conflict-<event>-<digest>`);
- an unrecognised record shape: `UnrecognisedEventWorkflow`, one per source, shape and hour
  (REJECT_DUPLICATE is the hourly throttle); it hands over to the source's `ReviewPacerWorkflow`
  for the hour (signal-with-start);
- old events a backfill or poll found: `StaleReportWorkflow` (type `StaleDigestWorkflow`), id
  derived from the events;
- the reminder digest of a task queue: `ReminderDigestWorkflow` and its
  `ReminderCollectorWorkflow`s (USE_EXISTING);
- polling a source: `PollWorkflow` on a Schedule `powertrip-poll-<source>`;
- a user's passkey store: `PasskeyWorkflow` by update-with-start (USE_EXISTING);
- a passkey the security channel must hear of: `PasskeyNoticeWorkflow`, one per notice id;
- a burst of like events: `GroupWorkflow` per key slot, joined by update-with-start
  (USE_EXISTING), from the joining event's own workflow (an activity).

A new workflow's start goes here too, with its name in `powertrip.contracts`.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from powertrip import temporal as attributes
from powertrip.config import ConfigError, PollOptions, PowertripConfig
from powertrip.contracts.approval import (
    APPROVAL_WORKFLOW,
    CONTENT_MEMO,
    RECORD_MEMO,
    ApprovalInput,
    EventRecord,
)
from powertrip.contracts.conflict import CONFLICT_WORKFLOW, ConflictReport, conflict_workflow_id
from powertrip.contracts.groups import (
    GROUP_SLOTS,
    GROUP_WORKFLOW,
    JOIN_UPDATE,
    GroupInput,
    Joined,
    JoinRequest,
    group_key,
    group_workflow_id,
)
from powertrip.contracts.passkeys import (
    PASSKEY_NOTICE_WORKFLOW,
    PASSKEY_WORKFLOW,
    IssueLink,
    LinkIssued,
    PasskeyNotice,
    PasskeyStore,
    PasskeyUpdate,
    passkey_notice_id,
    passkey_workflow_id,
)
from powertrip.contracts.polling import (
    POLL_WORKFLOW,
    STALE_LISTED,
    STALE_REPORT_WORKFLOW,
    StaleEvent,
    StaleReport,
    poll_input,
    stale_report_id,
)
from powertrip.contracts.reminders import (
    COLLECTORS,
    DIGEST_TASK_TIMEOUT,
    REMINDER_COLLECTOR_WORKFLOW,
    REMINDER_DIGEST_WORKFLOW,
    ReminderCollectorInput,
    ReminderDigestInput,
    reminder_collector_ids,
    reminder_digest_id,
    reminder_task_queue,
)
from powertrip.contracts.reviews import (
    ADD_SIGNAL,
    REVIEW_PACER_WORKFLOW,
    UNRECOGNISED_WORKFLOW,
    PacerInput,
    ReviewPacing,
    UnrecognisedInput,
    pacer_id,
    review_id,
)
from powertrip.hosts import host_key
from powertrip.identity import content_digest, identity_of
from powertrip.messages import markdown_block, markdown_code, markdown_text
from powertrip.models import EventStatus, RawEvent, SecurityEvent
from powertrip.sources.searches import scope_problem
from powertrip.unrecognised import invalid_shape, message_shape, review_sample


class ResultStatus(StrEnum):
    """What became of one record (`recognise.ItemResult.status`); `start_approval` answers one of
    the first three."""

    STARTED = "started"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    UNMATCHED = "unmatched"
    INVALID = "invalid"
    NON_EVENT = "non_event"
    """A well-known record that is no action to ask about (a failed login, PAM bookkeeping):
    counted under its rule, never reviewed."""


async def start_once(
    client: Client,
    workflow: str,
    arg: Any,
    *,
    id: str,
    task_queue: str,
    summary: str,
    **more: Any,
) -> bool:
    """Start `workflow` (its registered type name) with `arg` as workflow `id` unless a workflow
    with that id ever existed, running or closed (REJECT_DUPLICATE, for the namespace's
    retention): True if this call started it, False for a duplicate. `summary` is what the Web
    UI lists; `more`: other `start_workflow` options (memo, search attributes, details). Raises
    RPCError when Temporal refuses or fails the start."""
    try:
        await client.start_workflow(
            workflow,
            arg,
            id=id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=summary,
            **more,
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


# Events ---------------------------------------------------------------------------------------


def summary_for(event: SecurityEvent) -> str:
    """What the Temporal UI list shows for this workflow (single-line Markdown): log text spelled
    with `markdown_text`, so a forged line break or a bidi override in a user or host name shows
    as its escape, and `**root**` or `[bastion](https://…)` as written, not as markup."""
    where = f" on {markdown_text(event.host)}" if event.host else ""
    origin = f" from {markdown_text(event.address)}" if event.address else ""
    return f"{markdown_text(event.action)} as {markdown_text(event.actor)}{where}{origin}"


def details_for(event: SecurityEvent) -> str:
    """The Temporal UI's details pane (Markdown): the facts an investigator checks first, then
    the line. The provider id and the line come from the sender: shown as code they cannot end."""
    facts = [
        f"**{event.rule_title}** (`{event.rule_id}`) from `{event.source}`",
        f"at {event.occurred_at.isoformat()}, provider id {markdown_code(event.provider_id)}",
    ]
    if event.message:
        facts.append(markdown_block(event.message))
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
    """Start the event's `ApprovalWorkflow` (id: the event id) unless one with its id ever
    existed, running or closed (REJECT_DUPLICATE): `STARTED` or `DUPLICATE`.

    The event's content digest is kept with it (memo `content`), and an id that exists with
    another digest from a record of the same id is a `CONFLICT`: not started, reported to the
    security channel once (`ConflictWorkflow`). Another record of the event (a CloudTrail
    addendum and its original, `SecurityEvent.record_id`) is a `DUPLICATE` whatever it says: it
    re-delivers the event with fields updated. `stale`: found by a backfill long after it
    happened (no DM). Raises RPCError when Temporal refuses the start (INVALID_ARGUMENT: this
    event alone) or is down.
    """
    content = content_digest(event)
    memo: dict[str, object] = {RECORD_MEMO: EventRecord(event=event), CONTENT_MEMO: content}
    started = await start_once(
        client,
        APPROVAL_WORKFLOW,
        ApprovalInput(event=event, stale=stale),
        id=event.event_id,
        task_queue=task_queue,
        summary=summary_for(event),
        search_attributes=search_attributes_for(event),
        memo=memo,
        static_details=details_for(event),
    )
    if not started:
        return await _duplicate_or_conflict(client, event, content, task_queue)
    return ResultStatus.STARTED


async def _duplicate_or_conflict(
    client: Client, event: SecurityEvent, content: str, task_queue: str
) -> ResultStatus:
    """Same id again: a retry when the content is the same (or was recorded without a digest,
    before digests were kept), or another record of the event; otherwise a conflict, told to
    the security channel once."""
    description = await client.get_workflow_handle(event.event_id).describe()
    memo = await description.memo()
    recorded = memo.get(CONTENT_MEMO)
    if recorded is None or recorded == content:
        return ResultStatus.DUPLICATE
    first = await description.memo_value(RECORD_MEMO, None, type_hint=EventRecord)
    # An addendum updates what its original said, so the two differ by design, in either order;
    # what conflicts is another content under one record's own id. Recorded without its record,
    # the event is taken for its original's.
    recorded_id = first.event.record_id if isinstance(first, EventRecord) else event.provider_id
    if recorded_id != event.record_id:
        return ResultStatus.DUPLICATE
    report = ConflictReport(
        event_id=event.event_id,
        recorded=first.event if isinstance(first, EventRecord) else None,
        arriving=event,
        arriving_digest=content,
    )
    # A conflicting content reported already is not reported again.
    await start_once(
        client,
        CONFLICT_WORKFLOW,
        report,
        id=conflict_workflow_id(event.event_id, content),
        task_queue=task_queue,
        summary=f"conflicting delivery for {event.event_id}",
    )
    return ResultStatus.CONFLICT


# Reviews of unrecognised records --------------------------------------------------------------


async def request_review(
    client: Client,
    raw: RawEvent,
    task_queue: str,
    now: datetime | None = None,
    reason: str | None = None,
) -> tuple[str, bool]:
    """Start the review of this record's shape this hour (for an invalid record, `reason` says
    why it could not be read): (workflow id, True if this call started it)."""
    hour = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    shape = invalid_shape(reason) if reason else message_shape(raw)
    workflow_id = review_id(raw.source, shape, hour)
    request = UnrecognisedInput(
        source=raw.source, shape=shape, hour=hour, sample=review_sample(raw), reason=reason
    )
    started = await start_once(
        client,
        UNRECOGNISED_WORKFLOW,
        request,
        id=workflow_id,
        task_queue=task_queue,
        summary=f"unrecognised {raw.source} record: {markdown_text(shape[:120])}",
    )
    return workflow_id, started


async def hand_to_pacer(
    client: Client, request: UnrecognisedInput, task_queue: str, pacing: ReviewPacing
) -> None:
    """Give `request` to its source's `ReviewPacerWorkflow` for the hour, starting it if need be
    (signal-with-start: a retried hand-over is one signal the pacer recognises)."""
    await client.start_workflow(
        REVIEW_PACER_WORKFLOW,
        PacerInput(source=request.source, hour=request.hour, pacing=pacing),
        id=pacer_id(task_queue, request.source, request.hour),
        task_queue=task_queue,
        start_signal=ADD_SIGNAL,
        start_signal_args=[request],
        static_summary=f"reviews of {request.source} records, hour from {request.hour:%H}:00",
    )


# Stale events ---------------------------------------------------------------------------------


async def report_stale(
    client: Client,
    stale_events: list[StaleEvent],
    found_by: str,
    stale_after: timedelta,
    task_queue: str,
) -> str | None:
    """Start the stale report (`StaleReportWorkflow`, one security-channel message) for the stale
    events a run started; its workflow id, or None when there were none. `found_by`: e.g.
    `backfill of auth.log`."""
    if not stale_events:
        return None
    events = sorted(stale_events, key=lambda e: e.occurred_at)
    workflow_id = stale_report_id(events)
    report = StaleReport(
        found_by=found_by,
        stale_after_seconds=stale_after.total_seconds(),
        total=len(events),
        events=events[:STALE_LISTED],
    )
    await start_once(
        client,
        STALE_REPORT_WORKFLOW,
        report,
        id=workflow_id,
        task_queue=task_queue,
        summary=f"stale digest: {len(events)} events found by {found_by}",
    )
    return workflow_id


# Long-lived workflows -------------------------------------------------------------------------


async def ensure_reminder_digest(client: Client, task_queue: str, digest_after: int) -> None:
    """Start the task queue's `ReminderDigestWorkflow` and its `ReminderCollectorWorkflow`s,
    each unless it is already running, on `reminder_task_queue(task_queue)`. One started on
    `task_queue` itself (before they had a queue of their own) keeps running there: the main
    worker still runs them."""
    await client.start_workflow(
        REMINDER_DIGEST_WORKFLOW,
        ReminderDigestInput(digest_after=digest_after),
        id=reminder_digest_id(task_queue),
        task_queue=reminder_task_queue(task_queue),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="Powertrip reminder digest",
        task_timeout=DIGEST_TASK_TIMEOUT,
    )
    for n, collector in enumerate(reminder_collector_ids(task_queue)):
        await client.start_workflow(
            REMINDER_COLLECTOR_WORKFLOW,
            ReminderCollectorInput(digest_id=reminder_digest_id(task_queue)),
            id=collector,
            task_queue=reminder_task_queue(task_queue),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Powertrip reminder collector {n + 1} of {COLLECTORS}",
            task_timeout=DIGEST_TASK_TIMEOUT,
        )


async def issue_link_with_start(
    client: Client,
    task_queue: str,
    store: PasskeyStore,
    request: IssueLink,
) -> LinkIssued:
    """`issue_link` on `store.user`'s `PasskeyWorkflow`, starting it (empty, as `store`) if it
    never ran. A running store is reused; a closed one is never silently replaced by an empty
    one (the next passkey would count as a "first" and need no approval): Temporal refuses it
    (RPCError ALREADY_EXISTS). Raises what `execute_update_with_start_workflow` raises."""
    start: WithStartWorkflowOperation[Any, None] = WithStartWorkflowOperation(
        PASSKEY_WORKFLOW,
        store,
        id=passkey_workflow_id(store.user),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=f"Passkeys of {store.user}",
    )
    try:
        issued: LinkIssued = await client.execute_update_with_start_workflow(
            PasskeyUpdate.ISSUE_LINK,
            request,
            start_workflow_operation=start,
            result_type=LinkIssued,
        )
    except BaseException:
        # The start half holds the same failure in a future of its own: read it, so asyncio
        # does not log it as "never retrieved".
        with contextlib.suppress(Exception):
            await asyncio.wait_for(start.workflow_handle(), 0.1)
        raise
    return issued


async def join_group(
    client: Client, task_queue: str, request: JoinRequest, now: datetime | None = None
) -> Joined:
    """Join `request.event` to the open group of its key (`group_key`), starting one if none
    runs. Group ids are never reused (REJECT_DUPLICATE), so a group's id names one group and a
    decision signed for it decides its members only: `powertrip-group-<key>-<bucket>-<slot>`,
    the bucket being `now` in units of the event's window. First the previous bucket's open
    groups are asked (an update, no start: a burst that began just before the bucket turned
    goes on), then the current bucket's slots by update-with-start (USE_EXISTING). A group
    refuses (its `join` validator) once decided, full or past its window, a closed one cannot
    be started again; the next slot is tried; past `GROUP_SLOTS`, `Joined(group_id=None)`: the
    event is asked on its own. Temporal serialises the updates of one workflow, so concurrent
    joiners never split or duplicate a group, and a retried join finds its member there.
    Raises what Temporal raises otherwise (the activity retries)."""
    event, recipient = request.event, request.recipient
    key = group_key(event, recipient, task_queue)
    bucket = int((now or datetime.now(UTC)).timestamp() // event.group_window_seconds)
    for slot in range(GROUP_SLOTS):
        try:
            joined: Joined = await client.get_workflow_handle(
                group_workflow_id(key, bucket - 1, slot)
            ).execute_update(JOIN_UPDATE, request, result_type=Joined)
        except WorkflowUpdateFailedError:
            continue
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                break  # slots are started in order: none after this one either
            raise
        return joined
    for slot in range(GROUP_SLOTS):
        group_id = group_workflow_id(key, bucket, slot)
        start: WithStartWorkflowOperation[Any, None] = WithStartWorkflowOperation(
            GROUP_WORKFLOW,
            GroupInput(
                event=event.model_copy(update={"event_id": group_id}),
                recipient=recipient,
                window_seconds=event.group_window_seconds,
            ),
            id=group_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"group: {summary_for(event)}",
        )
        try:
            joined = await client.execute_update_with_start_workflow(
                JOIN_UPDATE, request, start_workflow_operation=start, result_type=Joined
            )
        except (WorkflowUpdateFailedError, WorkflowAlreadyStartedError):
            # Decided, full or past its window; or closed: the next slot.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(start.workflow_handle(), 0.1)
            continue
        except BaseException:
            # The start half holds the same failure in a future of its own: read it, so
            # asyncio does not log it as "never retrieved".
            with contextlib.suppress(Exception):
                await asyncio.wait_for(start.workflow_handle(), 0.1)
            raise
        return joined
    return Joined()


async def announce_passkey(client: Client, task_queue: str, notice: PasskeyNotice) -> str:
    """Tell the security channel about a passkey (`PasskeyNoticeWorkflow`), once per notice id
    (`passkey_notice_id`): a retried announcement posts nothing new. Returns the notice's id."""
    notice_id = passkey_notice_id(notice)
    who = notice.user_name or notice.user
    await start_once(
        client,
        PASSKEY_NOTICE_WORKFLOW,
        notice,
        id=notice_id,
        task_queue=task_queue,
        summary=f"{notice.kind.value.replace('_', ' ')} of {who}",
    )
    return notice_id


# Polling schedules ----------------------------------------------------------------------------


SCHEDULE_PREFIX = "powertrip-poll-"


def schedule_id(source: str) -> str:
    """`powertrip-poll-<source>`: the schedule, and the id of each poll it starts."""
    return SCHEDULE_PREFIX + source


def build_schedule(
    source: str, options: PollOptions, config: PowertripConfig, task_queue: str
) -> Schedule:
    """`source`'s schedule: a `PollWorkflow` every `options.every`, one at a time."""
    every = options.every
    return Schedule(
        action=ScheduleActionStartWorkflow(
            POLL_WORKFLOW,
            args=[poll_input(source, options, config)],
            id=schedule_id(source),
            task_queue=task_queue,
            static_summary=f"poll {source} for events the webhooks missed",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # One poll at a time; after downtime one poll catches up from the cursor, no pile-up.
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=max(every, timedelta(minutes=1))
        ),
        state=ScheduleState(note=f"Powertrip polls {source} every {every}"),
    )


async def ensure_poll_schedules(
    client: Client, config: PowertripConfig, task_queue: str
) -> list[str]:
    """Create the schedule of every source with `poll:` options, or bring an existing one's
    interval and options up to date. Keeps its paused/running state and its cursor."""
    ids = []
    for source, options in sorted(config.sources.items()):
        if options.poll is None:
            continue
        problem = scope_problem(source, options.poll)
        if problem:
            raise ConfigError(f"sources.{source}.poll: {problem}")
        schedule = build_schedule(source, options.poll, config, task_queue)
        try:
            await client.create_schedule(schedule_id(source), schedule)
        except ScheduleAlreadyRunningError:

            def updated(current: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                new.state = current.description.schedule.state
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(schedule_id(source)).update(updated)
        ids.append(schedule_id(source))
    return ids

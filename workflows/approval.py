"""One durable workflow per security event: ask the right human, keep asking the security channel
until someone with authority decides, then mark every message with the decision."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.slack import SLACK_PERMANENT, PostRequest, SlackActivities, UpdateRequest
    from powertrip import observability
    from powertrip import temporal as attributes
    from powertrip.approvals import (
        Action,
        ApprovalInput,
        Authority,
        Click,
        EventRecord,
        MessageKind,
        PostedMessage,
        TimelineEntry,
    )
    from powertrip.messages import DigestLine
    from powertrip.models import EventStatus
    from workflows.digest import (
        SLOT_TIMEOUT,
        DueReminder,
        ReminderDigestWorkflow,
        ReminderSlot,
        digest_workflow_id,
    )
    from workflows.patches import (
        NOT_ME_FIRST,
        PUBLISH_INCIDENT_MESSAGE,
        RECHECK_TEAM,
        REMINDER_DIGEST,
        STALE_NO_DM,
    )

# Slack may be down for hours: keep retrying, but give up each attempt round at the next reminder
# so the workflow can record the failure and try again in the following cycle.
SLACK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
SLACK_CALL_TIMEOUT = timedelta(seconds=20)


@workflow.defn
class ApprovalWorkflow:
    @workflow.init
    def __init__(self, input: ApprovalInput) -> None:
        self.record = input.carried or EventRecord(event=input.event)
        self.clicks: list[Click] = []
        self.slot: ReminderSlot | None = None

    @workflow.signal
    def decide(self, click: Click) -> None:
        """Durable even with no worker running: the click waits in history."""
        self.clicks.append(click)

    @workflow.signal
    def reminder_slot(self, slot: ReminderSlot) -> None:
        """The digest workflow's answer: post your own reminder, or you are in the digest."""
        self.slot = slot

    @workflow.query
    def state(self) -> EventRecord:
        return self.record

    @workflow.run
    async def run(self, input: ApprovalInput) -> EventRecord:
        event = self.record.event
        renotify = timedelta(seconds=event.renotify_after_seconds)
        if self.record.recipient is None:
            self.record.timeline.append(TimelineEntry(what="received", at=workflow.now()))
            self.record.recipient = await workflow.execute_activity_method(
                SlackActivities.resolve_recipient,
                event,
                start_to_close_timeout=SLACK_CALL_TIMEOUT,
                retry_policy=SLACK_RETRY,
                summary=f"who to ask about {event.actor}",
            )
            self._publish()
        # `and` short-circuits: histories of events that were never stale record no marker.
        stale = input.stale and workflow.patched(STALE_NO_DM)
        if stale:
            self._note_stale()
        elif not self._delivered(MessageKind.FIRST):
            await self._notify_first(renotify)
        next_reminder = workflow.now() + renotify
        while not self.record.finished:
            try:
                await workflow.wait_condition(
                    lambda: bool(self.clicks),
                    timeout=None if stale else max(next_reminder - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                await self._remind(renotify)
                next_reminder = workflow.now() + renotify
                if workflow.info().is_continue_as_new_suggested() and not self.clicks:
                    workflow.continue_as_new(ApprovalInput(event=event, carried=self.record))
                continue
            await self._handle_clicks(renotify)
        await self._update_messages()
        return self.record

    def _note_stale(self) -> None:
        if not any(entry.what == "stale" for entry in self.record.timeline):
            self.record.timeline.append(
                TimelineEntry(
                    what="stale",
                    at=workflow.now(),
                    detail="found by backfill long after it happened: listed in the security "
                    "channel's digest instead of a DM, no reminders",
                )
            )
            self._publish()

    def _delivered(self, kind: MessageKind) -> bool:
        return any(m.kind is kind for m in self.record.messages)

    def _waited(self) -> float:
        return (workflow.now() - self.record.timeline[0].at).total_seconds()

    def _publish(self) -> None:
        """Readers (API, CLI, HIDS) get the record from the memo: no worker needed, even after
        the workflow has closed."""
        workflow.upsert_memo({"record": self.record})
        workflow.upsert_search_attributes([attributes.STATUS.value_set(self.record.status.value)])

    async def _post(
        self, request: PostRequest, give_up_after: timedelta, summary: str
    ) -> PostedMessage:
        posted = await workflow.execute_activity_method(
            SlackActivities.post_notification,
            request,
            start_to_close_timeout=SLACK_CALL_TIMEOUT,
            schedule_to_close_timeout=max(give_up_after, timedelta(minutes=1)),
            retry_policy=SLACK_RETRY,
            summary=summary,
        )
        self.record.messages.append(posted)
        return posted

    def _failed(self, what: str, err: ActivityError) -> None:
        cause = err.cause
        detail = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        self.record.timeline.append(
            TimelineEntry(what="notify_failed", at=workflow.now(), detail=f"{what}: {detail}")
        )
        self._publish()

    async def _notify_first(self, renotify: timedelta) -> None:
        recipient = self.record.recipient
        assert recipient is not None
        request = PostRequest(
            record=self.record,
            kind=MessageKind.FIRST,
            to_user=recipient.slack_user,
            note=recipient.note,
        )
        try:
            await self._post(request, renotify, f"ask {recipient.asked}")
        except ActivityError as err:
            if recipient.slack_user is None or not _permanent(err):
                self._failed("first notification", err)
                return
            # The DM cannot be delivered (user gone, app not allowed): ask the channel instead.
            request.to_user = None
            request.note = f"Could not DM <@{recipient.slack_user}>: {err.cause}."
            try:
                await self._post(request, renotify, "ask the security channel (DM failed)")
            except ActivityError as channel_err:
                self._failed("first notification", channel_err)
                return
        self.record.timeline.append(
            TimelineEntry(what="notified", at=workflow.now(), detail=self.record.asked)
        )
        self._publish()

    async def _remind(self, renotify: timedelta) -> None:
        if not self._delivered(MessageKind.FIRST):
            await self._notify_first(renotify)
        # One thread per event in the security channel; its first reply is broadcast so the
        # channel sees it once, the rest stay in the thread.
        root = next((m for m in self.record.messages if m.in_security_channel), None)
        reminders = sum(1 for m in self.record.messages if m.kind is MessageKind.REMINDER)
        if workflow.patched(REMINDER_DIGEST) and await self._in_digest():
            self.record.timeline.append(
                TimelineEntry(
                    what="reminded",
                    at=workflow.now(),
                    detail=f"in the digest, waited {int(self._waited())}s",
                )
            )
            self._publish()
            return
        request = PostRequest(
            record=self.record,
            kind=MessageKind.REMINDER,
            waited_seconds=self._waited(),
            thread_ts=root.ts if root else None,
            broadcast=root is not None and reminders == 0,
        )
        try:
            await self._post(
                request, renotify, f"reminder #{reminders + 1} to the security channel"
            )
        except ActivityError as err:
            self._failed("reminder", err)
            return
        self.record.timeline.append(
            TimelineEntry(
                what="reminded", at=workflow.now(), detail=f"waited {int(self._waited())}s"
            )
        )
        self._publish()

    async def _in_digest(self) -> bool:
        """Ask the task queue's digest workflow whether this reminder goes into a digest."""
        cycle = workflow.now().isoformat()
        self.slot = None
        due = DueReminder(
            event_id=workflow.info().workflow_id,
            cycle=cycle,
            line=DigestLine(
                event=self.record.event,
                asked=self.record.asked,
                incident=self.record.report is not None,
                waited_seconds=self._waited(),
            ),
        )
        digest = workflow.get_external_workflow_handle(
            digest_workflow_id(workflow.info().task_queue)
        )
        try:
            await digest.signal(ReminderDigestWorkflow.due, due)
        except FailureError:
            return False  # no digest workflow running: remind on our own
        try:
            await workflow.wait_condition(
                lambda: self.slot is not None and self.slot.cycle == cycle, timeout=SLOT_TIMEOUT
            )
        except TimeoutError:
            return False
        return self.slot is not None and self.slot.in_digest

    async def _handle_clicks(self, renotify: timedelta) -> None:
        authority = self.record.authority
        assert authority is not None
        while self.clicks:
            click = self.clicks.pop(self._next_click())
            if not authority.may(
                click.action, self.record.status, click.user
            ) or not await self._still_on_team(authority, click):
                workflow.logger.info(
                    "ignored %s by %s while %s", click.action, click.user, self.record.status
                )
                continue
            self.record.apply(click)
            observability.observe_decision(self.record)
            self._publish()
            if click.action is Action.NOT_ME:
                await self._update_messages()
                try:
                    await self._post(
                        PostRequest(record=self.record, kind=MessageKind.INCIDENT),
                        renotify,
                        "incident alert to the security channel",
                    )
                except ActivityError as err:
                    self._failed("incident alert", err)
                else:
                    # The API checks a click against the messages in the memo: the alert's
                    # Acknowledge button must be there at once, not after the next reminder.
                    if workflow.patched(PUBLISH_INCIDENT_MESSAGE):
                        self._publish()

    async def _still_on_team(self, authority: Authority, click: Click) -> bool:
        """The team was resolved when the event began; someone removed from it since (config
        changed, user group edited) must not decide events that were pending then."""
        without_team = authority.model_copy(update={"security_team": []})
        if without_team.may(click.action, self.record.status, click.user):
            return True  # the owner or a listed approver: the team does not matter
        if not workflow.patched(RECHECK_TEAM):
            return True
        try:
            # Annotated: left to inference, mypy (2.4) loses ApprovalWorkflow's own type in
            # every module that imports it.
            team: list[str] = await workflow.execute_activity_method(
                SlackActivities.current_security_team,
                start_to_close_timeout=SLACK_CALL_TIMEOUT,
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=SLACK_RETRY,
                summary="who is on the security team now",
            )
        except ActivityError as err:
            # Slack's user group unreachable: keep the team known at the start.
            self._failed("security team check", err)
            return True
        if team != authority.security_team:
            authority.security_team = team
            self._publish()  # the API refuses the removed member's next click at once
        return click.user in team

    def _next_click(self) -> int:
        """The owner saying *Not me* outweighs an approval queued just before it (e.g. the team
        approving on their behalf): the report must never be lost to the order of arrival."""
        not_me = next((i for i, c in enumerate(self.clicks) if c.action is Action.NOT_ME), 0)
        return not_me if not_me and workflow.patched(NOT_ME_FIRST) else 0

    async def _update_messages(self) -> None:
        """Every copy of the message shows the outcome; none keeps live buttons."""
        stale = [
            m
            for m in self.record.messages
            if not (m.kind is MessageKind.INCIDENT and self.record.status is EventStatus.REPORTED)
        ]
        results = await asyncio.gather(
            *(
                workflow.execute_activity_method(
                    SlackActivities.update_message,
                    UpdateRequest(record=self.record, message=m),
                    start_to_close_timeout=SLACK_CALL_TIMEOUT,
                    schedule_to_close_timeout=timedelta(hours=24),
                    retry_policy=SLACK_RETRY,
                    summary=f"mark {m.kind.value} message {self.record.status.value}",
                )
                for m in stale
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, ActivityError):
                self._failed("message update", result)
            elif isinstance(result, BaseException):
                raise result


def _permanent(err: ActivityError) -> bool:
    return isinstance(err.cause, ApplicationError) and err.cause.type == SLACK_PERMANENT

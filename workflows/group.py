"""A burst of like events asked as one question (issue 13 §1): `GroupWorkflow`.

Events of the same actor, host, kind and authority shape within the grouping window join one
group (`powertrip.contracts.groups`; joined by update-with-start from each event's own
`ApprovalWorkflow`, `powertrip.services.starts.join_group`). The group is an `ApprovalWorkflow`
over its first member's event, with the group's id as the event id: it asks (one message,
updated in place as members join, debounced), reminds and escalates by the event's policy,
verifies decisions signed for the group, and forwards each decision it counts, as signed, to
every member. A member verifies the forward again (the signature names its group) and records
it as decided as part of the group. The `join` validator closes membership once the group is
decided, full, or past its window.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.slack import SlackActivities
    from powertrip.contracts.approval import (
        DECIDE_SIGNAL,
        Burst,
        EventRecord,
        Member,
        TimelineEntry,
        TimelineKind,
        UpdateRequest,
    )
    from powertrip.contracts.groups import (
        GROUP_WORKFLOW,
        JOIN_UPDATE,
        LISTED,
        MAX_MEMBERS,
        REFRESH_AFTER,
        GroupInput,
        Joined,
        JoinRequest,
    )
    from powertrip.contracts.slack import slack_call
    from powertrip.models import EventStatus
    from workflows.approval import ApprovalWorkflow, _Received
    from workflows.patches import GROUP_APPROVES_WHAT_IT_SHOWED, patched


@workflow.defn(name=GROUP_WORKFLOW)
class GroupWorkflow(ApprovalWorkflow):
    """One question for a burst of events; see the module docstring. Input `GroupInput`;
    memo `record` and result: the group's `EventRecord` (`burst`: its members)."""

    @workflow.init
    def __init__(self, input: GroupInput) -> None:
        carried = input.carried
        if carried is None:
            carried = EventRecord(
                event=input.event,
                recipient=input.recipient,
                burst=Burst(),
                timeline=[TimelineEntry(what=TimelineKind.RECEIVED, at=workflow.now())],
            )
        super().__init__(input.model_copy(update={"carried": carried}))
        assert isinstance(self.input, GroupInput)
        self.group: GroupInput = self.input
        self.members = set(self.group.members)
        self.changed = False
        """Members joined since the message last showed them."""
        self.messages_lock = asyncio.Lock()
        """One `chat.update` at a time, so a late refresh never overwrites the decision."""

    @workflow.run
    async def run(self, input: GroupInput) -> EventRecord:  # type: ignore[override]
        """Ask once, show members as they join, remind until decided, forward the decision."""
        refresh = asyncio.create_task(self._refresh())
        record = await super().run(input)
        refresh.cancel()
        return record

    @workflow.update(name=JOIN_UPDATE)
    def join(self, request: JoinRequest) -> Joined:
        """Add an event (once: a retried join answers the same)."""
        event = request.event
        if event.event_id not in self.members:
            self.members.add(event.event_id)
            self.group.members.append(event.event_id)
            burst = self.record.burst = self.record.burst or Burst()
            burst.members += 1
            if burst.since is None or event.occurred_at < burst.since:
                burst.since = event.occurred_at
            burst.latest.append(Member.of(event))
            burst.latest.sort(key=lambda m: m.occurred_at)
            del burst.latest[:-LISTED]
            self.changed = True
        return Joined(group_id=workflow.info().workflow_id)

    @join.validator
    def _may_join(self, request: JoinRequest) -> None:
        """Refuse a new member once the group is decided, full or past its window (counted
        from the group's start): the joiner tries the next slot."""
        if request.event.event_id in self.members:
            return
        if self.record.status is not EventStatus.PENDING:
            raise ValueError(f"the group is {self.record.status.value}")
        if len(self.members) >= MAX_MEMBERS:
            raise ValueError(f"the group is full ({MAX_MEMBERS} events)")
        window = timedelta(seconds=self.group.window_seconds)
        if workflow.now() - self.record.timeline[0].at > window:
            raise ValueError("the group's window has passed")

    async def _refresh(self) -> None:
        """Show new members on the question: once the first message is posted, at most one
        `chat.update` per message every `REFRESH_AFTER` however many join."""
        while True:
            await workflow.wait_condition(
                lambda: (self.changed and bool(self.record.messages)) or self.record.finished
            )
            if self.record.status is not EventStatus.PENDING:
                return
            await workflow.sleep(REFRESH_AFTER)
            async with self.messages_lock:
                if self.record.status is not EventStatus.PENDING:
                    return
                self.changed = False
                self._publish()
                results = await asyncio.gather(
                    *(
                        workflow.execute_activity_method(
                            SlackActivities.update_message,
                            UpdateRequest(record=self.record, message=m),
                            **slack_call(
                                f"show {self.record.burst.members if self.record.burst else 0} "
                                "events on the group's question",
                                timedelta(minutes=5),
                            ),
                        )
                        for m in self.record.messages
                    ),
                    return_exceptions=True,
                )
            for result in results:
                if isinstance(result, ActivityError):
                    self._failed("group message update", result)
                elif isinstance(result, BaseException):
                    raise result

    async def _approved_by_expectation(self) -> bool:
        """Never for the group itself: each member was checked before it joined."""
        return False

    async def _joined_group(self) -> bool:
        """A group joins no group: it asks."""
        return False

    async def _update_messages(self) -> None:
        async with self.messages_lock:
            await super()._update_messages()

    async def _count(
        self,
        received: _Received,
        renotify: timedelta,
        verified: bool,
        cli_team_only: bool = False,
    ) -> None:
        """Count the decision as an event does, and forward every decision that counted, as
        it was signed (for the group), to each member. An approval pressed on a message that
        listed fewer events than have joined is refused (patch `group-approves-what-it-showed`):
        the message is drawn again, and the approver decides on what it lists."""
        refused = self.record.shown_refusal(received.click) if verified else None
        if refused and received.click.refused is None and patched(GROUP_APPROVES_WHAT_IT_SHOWED):
            self._trace(TimelineKind.REFUSED, received, refused)
            self.changed = True
            return
        before = self.record.status
        await super()._count(received, renotify, verified, cli_team_only)
        if verified and self.record.status is not before:
            await self._forward(received)

    async def _forward(self, received: _Received) -> None:
        """The signed decision to every member: each verifies it for this group and applies
        it against its own authority. A member that is gone is noted, not retried."""
        results = await asyncio.gather(
            *(
                workflow.get_external_workflow_handle(member).signal(DECIDE_SIGNAL, received.click)
                for member in self.group.members
            ),
            return_exceptions=True,
        )
        gone = [
            member
            for member, result in zip(self.group.members, results, strict=True)
            if isinstance(result, FailureError)
        ]
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, FailureError):
                raise result
        if gone:
            self._note(
                TimelineKind.NOTIFY_FAILED,
                f"{received.click.action.value} not forwarded to {len(gone)} closed member(s): "
                + ", ".join(gone[:10]),
            )

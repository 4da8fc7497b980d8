"""The Slack activities of `ApprovalWorkflow` and `ReminderDigestWorkflow`, and what every Slack
activity shares: `classify` (Slack errors as the errors Temporal should act on: retry what can
recover, stop at once, visibly, on what cannot) and `SecurityChannel` (one post to the security
channel). Requests and replies are in `powertrip.contracts`; messages in `powertrip.messages`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities import metrics
from powertrip import messages
from powertrip.config import PowertripConfig
from powertrip.contracts.approval import (
    Authority,
    MessageKind,
    PostedMessage,
    PostRequest,
    Recipient,
    UpdateRequest,
)
from powertrip.contracts.reminders import ReminderDigestRequest
from powertrip.contracts.slack import SLACK_CALL_TIMEOUT, SLACK_PERMANENT, NoticeMessage
from powertrip.directory import Directory, Identity, SlackDirectory
from powertrip.models import EventStatus, Routing, SecurityEvent
from powertrip.origins import Origins
from powertrip.pacing import ChannelPacer, Deferred
from powertrip.webui import WebUi

log = logging.getLogger(__name__)
POST_METADATA = "powertrip_post"
"""Slack message metadata `event_type` of a notification: its `event_payload.post` names the
activity that posted it, so a retried attempt can find what an interrupted one already posted."""

# Errors that no retry can fix: wrong token, missing scope, unknown channel or user.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "user_not_found",
        "users_not_found",
        "cannot_dm_bot",
        "invalid_blocks",
        "msg_too_long",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "invalid_arguments",
        "restricted_action",
        "team_access_not_granted",
        "ekm_access_denied",
    }
)


def classify(exc: SlackApiError) -> ApplicationError:
    """Turn a Slack failure into the error Temporal should act on: 429 retries after Slack's
    `Retry-After` (seconds); 5xx and unknown errors retry with the policy's backoff;
    `PERMANENT_ERRORS` fail at once as `SLACK_PERMANENT`."""
    status = exc.response.status_code
    error = str(exc.response.get("error", "") if isinstance(exc.response.data, dict) else "")
    if status == 429:
        retry_after = float(
            exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 1))
        )
        return ApplicationError(
            f"Slack rate limit; retrying after {retry_after:g}s",
            type="SlackRateLimited",
            next_retry_delay=timedelta(seconds=max(retry_after, 1.0)),
        )
    if status >= 500:
        return ApplicationError(f"Slack unavailable (HTTP {status})", type="SlackUnavailable")
    if error in PERMANENT_ERRORS:
        return ApplicationError(
            f"Slack refused: {error}", error, type=SLACK_PERMANENT, non_retryable=True
        )
    return ApplicationError(f"Slack error: {error or status}", type="SlackError")


CHANNEL_PACED = "ChannelPaced"
"""The `ApplicationError` type of a post deferred to its channel's turn: Temporal retries it after
its `next_retry_delay`, when the turn the pacer reserved for it comes."""


def deferred(wait: Deferred) -> ApplicationError:
    """A post whose turn is `wait.delay` seconds away, as the retry Temporal should hold for it
    (benign: logged at debug level, not counted as a failed activity by the SDK)."""
    return ApplicationError(
        str(wait),
        type=CHANNEL_PACED,
        next_retry_delay=timedelta(seconds=wait.delay),
        category=ApplicationErrorCategory.BENIGN,
    )


class SecurityChannel:
    """One post to the security channel (`channel`: its id), errors classified for Temporal."""

    def __init__(self, client: AsyncWebClient, channel: str) -> None:
        self.client = client
        self.channel = channel

    async def post(self, text: str, blocks: Sequence[Block | dict[str, Any]]) -> tuple[str, str]:
        """Post `text` (the fallback) and `blocks`; Slack's (channel id, message ts)."""
        try:
            response = await self.client.chat_postMessage(
                channel=self.channel, text=text, blocks=blocks, unfurl_links=False
            )
        except SlackApiError as exc:
            raise classify(exc) from exc
        return str(response["channel"]), str(response["ts"])

    async def update(
        self, message: NoticeMessage, text: str, blocks: Sequence[Block | dict[str, Any]]
    ) -> None:
        """Edit a message posted before (`message`: where it is) in place."""
        try:
            await self.client.chat_update(
                channel=message.channel, ts=message.ts, text=text, blocks=blocks
            )
        except SlackApiError as exc:
            raise classify(exc) from exc


class SlackActivities:
    """`ApprovalWorkflow`'s Slack calls (who to ask, post, update, the current security team)
    and the reminder digest's post. Messages to the security channel are paced (`channel_interval`
    seconds apart) to stay under Slack's per-channel limit."""

    def __init__(
        self,
        client: AsyncWebClient,
        config: PowertripConfig,
        security_channel: str,
        temporal_ui_url: str | None = None,
        namespace: str = "default",
        channel_interval: float = 1.0,
    ) -> None:
        self.client = client
        self.config = config
        self.directory = Directory(config)
        self.slack_directory = SlackDirectory(client, config)
        self.origins = Origins(config.networks, config.reverse_dns)
        self.pacer = ChannelPacer(channel_interval)
        self.security_channel = security_channel
        self.ui = WebUi.at(temporal_ui_url, namespace)

    def _ui_link(self, event: SecurityEvent) -> str | None:
        return self.ui.workflow_url(event.event_id) if self.ui else None

    async def _security_team(self) -> list[str]:
        try:
            return await self.slack_directory.security_team()
        except SlackApiError as exc:
            raise classify(exc) from exc

    @activity.defn
    async def resolve_recipient(self, event: SecurityEvent) -> Recipient:
        """Whom to ask about `event`, and who may decide it: the directory's entry for the actor
        (a Slack user by id, or by email through `users.lookupByEmail`), the security team (config
        and user group) and their Slack names. A DM for a mapped owner who may approve; the security
        channel (`slack_user` None, with a `note` saying why) for bots, shared and unmapped accounts
        and channel-routed rules."""
        entry = self.directory.lookup(event.actor, event.source)
        try:
            slack_user = await self.slack_directory.slack_user_of(entry)
        except SlackApiError as exc:
            raise classify(exc) from exc
        note = None
        if entry.identity is Identity.MAPPED and slack_user is None and entry.email:
            note = (
                f"{messages.name(event.actor)} maps to {messages.escape(entry.email)}, "
                "which has no Slack user."
            )
        if entry.identity is Identity.UNMAPPED:
            note = f"{messages.name(event.actor)} is not mapped to a Slack user."
        elif entry.identity in (Identity.BOT, Identity.SHARED):
            note = (
                f"{messages.name(event.actor)} is a {entry.identity.value} account: "
                "the security team decides."
            )
        authority = Authority(
            actor_slack_user=slack_user
            if entry.identity is Identity.MAPPED and event.actor_may_approve
            else None,
            approvers=event.extra_approvers,
            security_team=await self._security_team(),
            contest_window_seconds=self.config.contest_window.total_seconds(),
        )
        people = [slack_user, *authority.approvers, *authority.security_team]
        authority.names = await self._names(p for p in people if p)
        dm = slack_user if entry.identity is Identity.MAPPED else None
        if event.routing is Routing.CHANNEL:
            dm, note = None, note or "This rule always asks the security channel."
        elif dm and not event.actor_may_approve:
            # A DM whose buttons the owner may not press helps nobody: ask those who may.
            note = note or (
                f"This rule needs approval by {_who_approves(event)}, not by "
                f"{messages.name(event.actor)} ({messages.mention(dm)})."
            )
            dm = None
        return Recipient(
            identity=entry.identity
            if slack_user or entry.identity is not Identity.MAPPED
            else Identity.UNMAPPED,
            slack_user=dm,
            authority=authority,
            note=note,
        )

    async def _names(self, users: Iterable[str]) -> dict[str, str]:
        """Slack user names, for the CLI and the API to show instead of ids: best effort, a
        name Slack does not give is simply left out."""
        names = {}
        for user in dict.fromkeys(users):
            try:
                found = await self.slack_directory.user_name(user)
            except SlackApiError:
                continue
            if found:
                names[user] = found
        return names

    @activity.defn
    async def current_security_team(self) -> list[str]:
        """The security team as the config (and user group) say now, not when the event began."""
        return await self._security_team()

    @activity.defn
    async def post_notification(self, request: PostRequest) -> PostedMessage:
        """Post a first question, reminder or report alert (`request.kind`) to the owner's DM
        (`to_user`) or the security channel, paced per channel; where Slack put it."""
        text, blocks = messages.notification(
            request.record,
            request.kind,
            request.waited_seconds,
            self._ui_link(request.record.event),
            request.note,
            in_channel=request.to_user is None,
            origin=await self.origins.describe(request.record.event.address),
        )
        channel = request.to_user or self.security_channel
        in_channel = request.to_user is None
        post = _post_key(request.key)
        if (
            _may_have_posted(request)
            and not self.pacer.reserved(channel, post)
            and (found := await self._posted(channel, post, request))
        ):
            # An earlier attempt posted it and its answer was lost (Slack failing after the
            # fact, a worker killed before Temporal recorded it): the same message, not a second.
            metrics.count_slack_call("chat.postMessage", f"{request.kind.value}-found")
            return PostedMessage(
                kind=request.kind, channel=found[0], ts=found[1], in_security_channel=in_channel
            )
        try:
            async with self._turn(channel, post, request.kind, request.give_up_at):
                response = await self.client.chat_postMessage(
                    channel=channel,
                    text=text,
                    blocks=blocks,
                    thread_ts=request.thread_ts,
                    reply_broadcast=request.broadcast or None,
                    unfurl_links=False,
                    metadata={"event_type": POST_METADATA, "event_payload": {"post": post}},
                )
        except SlackApiError as exc:
            metrics.count_slack_call("chat.postMessage", request.kind.value, exc)
            raise classify(exc) from exc
        metrics.count_slack_call("chat.postMessage", request.kind.value)
        return PostedMessage(
            kind=request.kind,
            channel=response["channel"],
            ts=response["ts"],
            in_security_channel=in_channel,
        )

    @asynccontextmanager
    async def _turn(
        self, channel: str, post: str, kind: MessageKind, give_up_at: datetime | None
    ) -> AsyncIterator[None]:
        """`channel`'s turn for this activity's `post`; a turn more than a moment away is left
        to Temporal (`deferred`), but never past when the post gives up (`_deadline`) less
        one call's time: a reminder waiting for its turn is late, not given up."""
        deadline = _deadline(self.pacer.clock(), give_up_at)
        try:
            async with self.pacer.turn(channel, post, deadline=deadline):
                yield
        except Deferred as wait:
            metrics.count_slack_call("chat.postMessage", kind.value, deferred=True)
            raise deferred(wait) from None

    async def _posted(
        self, channel: str, post: str, request: PostRequest
    ) -> tuple[str, str] | None:
        """`(channel id, ts)` of the message this activity's earlier attempt posted to `channel`
        (a user id for a DM) or its thread, found by its metadata; None when there is none or
        Slack will not say (without the `*:history` scopes a retry posts again, as before)."""
        since = (request.scheduled_at or activity.info().scheduled_time) - timedelta(minutes=1)
        try:
            if channel.startswith(("U", "W")):
                opened = await self.client.conversations_open(users=channel)
                channel = str(opened["channel"]["id"])
            if request.thread_ts:
                answer = await self.client.conversations_replies(
                    channel=channel, ts=request.thread_ts, include_all_metadata=True, limit=200
                )
            else:
                answer = await self.client.conversations_history(
                    channel=channel,
                    oldest=f"{since.timestamp():.6f}",
                    include_all_metadata=True,
                    limit=100,
                )
        except SlackApiError as exc:
            log.warning(
                "cannot look for an earlier attempt's %s in %s (%s): posting it again",
                request.kind.value,
                channel,
                exc.response.get("error"),
            )
            return None
        for message in answer.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == POST_METADATA and payload.get("post") == post:
                return channel, str(message["ts"])
        return None

    @activity.defn
    async def update_message(self, request: UpdateRequest) -> None:
        """Show the record's outcome on a message it posted (no buttons left, except the owner's
        *Not me* during a contest window); while it is pending (a group's question that more
        events joined), the question as it stands now."""
        record, message = request.record, request.message
        origin = await self.origins.describe(record.event.address)
        if record.status is EventStatus.PENDING:
            # Still a question (a group's, with members joined since): buttons stay live.
            text, blocks = messages.notification(
                record,
                message.kind,
                ui_url=self._ui_link(record.event),
                in_channel=message.in_security_channel,
                origin=origin,
            )
        else:
            text, blocks = messages.decided(
                record,
                message.kind,
                self._ui_link(record.event),
                in_channel=message.in_security_channel,
                origin=origin,
            )
        try:
            await self.client.chat_update(
                channel=request.message.channel, ts=request.message.ts, text=text, blocks=blocks
            )
        except SlackApiError as exc:
            metrics.count_slack_call("chat.update", request.message.kind.value, exc)
            raise classify(exc) from exc
        metrics.count_slack_call("chat.update", request.message.kind.value)

    @activity.defn
    async def post_digest(self, request: ReminderDigestRequest) -> PostedMessage:
        """One message listing many due reminders (see workflows/reminders.py)."""
        # Each line's link is the worker's own: a `due` signal anyone can send named its URL.
        lines = [
            line.model_copy(update={"ui_url": self._ui_link(line.event)}) for line in request.lines
        ]
        text, blocks = messages.reminder_digest(lines)
        # The next turn, ahead of the per-event posts waiting for theirs: one digest saves many
        # of them (it used to wait behind them, past its 45 s, and failed: issue 16).
        async with self.pacer.turn(self.security_channel, first=True):
            channel, ts = await SecurityChannel(self.client, self.security_channel).post(
                text, blocks
            )
        return PostedMessage(
            kind=MessageKind.REMINDER, channel=channel, ts=ts, in_security_channel=True
        )


def _who_approves(event: SecurityEvent) -> str:
    listed = " ".join(messages.mention(user) for user in event.extra_approvers)
    return f"{listed} or the security team" if listed else "the security team"


def _deadline(now: float, give_up_at: datetime | None) -> float | None:
    """When (on the clock that says `now`) this activity's post must be made at the latest: when
    the post gives up (`give_up_at`, else this activity's schedule-to-close timeout) less one
    attempt's start-to-close; None without either."""
    info = activity.info()
    if give_up_at is not None:
        ends = give_up_at - SLACK_CALL_TIMEOUT
    elif info.schedule_to_close_timeout is not None:
        ends = info.scheduled_time + info.schedule_to_close_timeout - SLACK_CALL_TIMEOUT
    else:
        return None
    return now + (ends - datetime.now(UTC)).total_seconds()


LOST_TASK_AFTER = timedelta(seconds=5)
"""A local activity's post that starts this long after the workflow task that scheduled it may
be a rerun of that task, lost after an earlier run posted (a worker killed after the SDK had
already completed the task once while the post ran long: the rerun replays that task from its
start, with its time, at attempt 1). A rerun comes at least the task's timeout (10 s) after the
lost run started. A first run that starts this late (an overloaded worker) looks too: a lookup,
never a second DM."""


def _may_have_posted(request: PostRequest) -> bool:
    """Whether an earlier attempt or a lost run may already have posted `request`: look first."""
    info = activity.info()
    late = (
        info.is_local
        and request.scheduled_at is not None
        and datetime.now(UTC) - request.scheduled_at > LOST_TASK_AFTER
    )
    return info.attempt > 1 or request.look_first or late


def _post_key(name: str | None = None) -> str:
    """The same for every attempt of one scheduled activity, different for every other; `name`
    (`PostRequest.key`) in place of the activity's id."""
    info = activity.info()
    return f"{info.workflow_id}/{info.workflow_run_id}/{name or info.activity_id}"

"""Decisions on an event, from whoever verified the human: the authority check, the signature and
the durable `decide` signal, in one place for every sender.

- A Slack click (`deliver_click`, from the API's Bolt listener once Slack's signature proved who
  clicked) and the CLI's security-team override (`approve_as_security`) both check the decision
  against the authority the workflow published in its memo, sign it with their own key (the
  API's, the CLI's: `powertrip.signing`) and signal it by name (`DECIDE_SIGNAL`): durable in
  Temporal even with no worker running. The workflow verifies the signature, and that its signer
  may vouch for its `via`, before the decision counts.
- A refused decision on a running event is signalled too, marked refused, so the event's
  timeline shows the attempt; the workflow changes nothing for it.

Who may decide comes from the record, never from the request: a Slack button's value only names
the event, and the clicked message must be one that event posted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from powertrip import temporal as attributes
from powertrip.contracts.approval import (
    DECIDE_SIGNAL,
    RECORD_MEMO,
    Action,
    Click,
    EventRecord,
)
from powertrip.contracts.passkeys import (
    PasskeyRefused,
    StepUpOutcome,
    StepUpRefused,
    StepUpVerified,
)
from powertrip.models import EventStatus
from powertrip.services.stepup import issue_step_up_link, passkeys_of
from powertrip.settings import Settings
from powertrip.signing import sign
from powertrip.visibility import RecordError

log = logging.getLogger(__name__)

# A message is posted a moment before the workflow records it in its memo: a very quick click on
# a brand-new message looks again before concluding the message is not the event's.
MESSAGE_GRACE_SECONDS = 1.5
# Slack shows a question as soon as it is posted; the workflow records the message one workflow
# task later, which a busy worker starts seconds to a minute late. A click from a channel where
# the record has no message yet waits this long for it (in the background: Slack has its 200),
# so a quick answer under load is not refused as a forgery.
FIRST_MESSAGE_GRACE_SECONDS = 90.0
# How long a decision refused for the run's signal limit is tried again: the workflow continues
# as new once it has handled what it holds (thousands of signals take it tens of seconds on a
# busy worker). A Slack click has long been answered by then; its clicker hears if it failed.
SIGNAL_LIMIT_RETRY_SECONDS = 90.0


class Refused(RecordError):
    """An override the workflow would ignore; refused up front with the reason."""


@dataclass(frozen=True)
class Delivery:
    """What became of a click: `outcome` is delivered, refused, mismatch, stale (the event is
    past this action), closed (it finished before the signal) or unknown; `reply` is what to
    tell the clicker (Slack: an ephemeral message), if anything."""

    outcome: str
    reply: str | None = None


def at_signal_limit(exc: RPCError) -> bool:
    """Temporal refused a signal because the run has taken as many as it may
    (`history.maximumSignalsPerExecution`, 10,000 by default): a flood of forged signals."""
    return exc.status is RPCStatusCode.INVALID_ARGUMENT and "limit for signal" in exc.message


async def _signal(client: Client, key: str, event_id: str, click: Click) -> None:
    """Sign `click` for `event_id` and deliver it as the `decide` signal. RPCError NOT_FOUND when
    the workflow is closed or unknown.

    A run at Temporal's signal limit continues as new as soon as it has handled the signals
    it holds (`ApprovalWorkflow`), and the next run takes signals again: a refusal for the
    limit is retried, backing off, for up to SIGNAL_LIMIT_RETRY_SECONDS, then raised."""
    handle: WorkflowHandle[object, object] = client.get_workflow_handle(event_id)
    signed = sign(key, event_id, click)
    deadline = time.monotonic() + SIGNAL_LIMIT_RETRY_SECONDS
    pause = 0.2
    while True:
        try:
            await handle.signal(DECIDE_SIGNAL, signed)
            return
        except RPCError as exc:
            if not at_signal_limit(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning(
                "%s is at Temporal's signal limit (a flood of signals?): %s %s again in %.1fs",
                event_id,
                click.action.value,
                click.user,
                pause,
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, 5.0)


async def event_record(client: Client, event_id: str) -> EventRecord | None:
    """The event's record from its memo (no worker needed); None for an unknown event."""
    try:
        description = await client.get_workflow_handle(event_id).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return await description.memo_value(RECORD_MEMO, type_hint=EventRecord)


def _posted_by_event(record: EventRecord, message: tuple[str, str]) -> bool:
    return any((m.channel, m.ts) == message for m in record.messages)


async def _on_its_message(
    client: Client, event_id: str, record: EventRecord, message: tuple[str, str] | None
) -> tuple[EventRecord, str | None]:
    """The record (looked up again while a brand-new message is not in it yet), and why the
    click is not from one of the event's own messages, if it is not."""
    if message is None:
        # Every button Powertrip posts is on a message; Slack names it in `container`.
        return record, "not from one of this event's messages (the click names no message)"
    started = time.monotonic()
    pause = 0.2
    while not _posted_by_event(record, message):
        first_here = all(m.channel != message[0] for m in record.messages)
        grace = FIRST_MESSAGE_GRACE_SECONDS if first_here else MESSAGE_GRACE_SECONDS
        if time.monotonic() - started >= grace:
            break
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 2.0)
        record = await event_record(client, event_id) or record
    if _posted_by_event(record, message):
        return record, None
    log.warning("click on %s from a message it never posted: %s", event_id, message)
    return record, f"from a message this event never posted (channel {message[0]}, {message[1]})"


async def deliver_click(
    client: Client,
    key: str,
    event_id: str,
    click: Click,
    message: tuple[str, str] | None = None,
    *,
    settings: Settings | None = None,
) -> Delivery:
    """A Slack click on `message` (channel id, message ts; None: the payload named none), by the
    user Slack's signature proved: check it against the workflow's own record, sign it with
    `key`, signal it. An approval of a step-up event is answered with a one-time link instead
    (`answer_with_step_up_link`; `settings`: where the links point, None: step-up off). Raises
    RPCError when Temporal fails (the caller answers Slack 503)."""
    record = await event_record(client, event_id)
    if record is None:
        return Delivery("unknown", "Powertrip does not know this event.")
    record, mismatch = await _on_its_message(client, event_id, record, message)
    if mismatch is not None:
        outcome, refused = "mismatch", mismatch
        reply: str | None = ":no_entry: This button does not belong to that event."
    elif refusal := record.refusal(click.action, click.user):
        if refusal.stale:  # already decided: nothing to trace
            return Delivery("stale", refusal.text)
        outcome, reply, refused = "refused", f":no_entry: {refusal.text}", refusal.plain
    elif shown := record.shown_refusal(click):
        # The group workflow refuses it too, for members that joined since its memo.
        outcome, refused = "refused", shown
        reply = f":warning: {refused}: look at the updated message and decide again."
    else:
        outcome, reply, refused = "delivered", None, None
    # Step-up (issue 15), the one insertion point: an approval the event wants confirmed with a
    # passkey is answered with a one-time link; nothing is signalled until the passkey checks.
    if refused is None and record.needs_step_up(click):
        return await answer_with_step_up_link(client, settings, record, click.user, click.shown)
    try:
        await _signal(client, key, event_id, click.model_copy(update={"refused": refused}))
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        if reply is None:  # it finished between our look at it and the signal
            outcome = "closed"
            reply = (
                "This event closed before your click arrived, so it was not recorded. If this "
                "was not you, tell the security team at once."
            )
    return Delivery(outcome, reply)


async def approve_as_security(
    client: Client,
    event_id: str,
    user: str,
    reason: str,
    security_team: Sequence[str],
    *,
    key: str,
    operator: str,
) -> EventRecord:
    """Deliver an approval from the CLI as the same `decide` signal a Slack click sends, signed
    with the CLI's key (`key`: POWERTRIP_CLI_DECISION_KEY, which the worker accepts for `via: cli`
    decisions only) and recorded as `via: cli` with `operator` (`user@host` of the
    operating-system account that ran it). Returns the record as it was before.

    Only the security team may approve from the CLI: checked against the team the workflow
    published in its memo; `security_team` from the config stands in while the workflow has not
    resolved it yet. A refusal for lack of authority is also signalled, marked refused, so the
    event's timeline shows the attempt. Raises Refused with the reason (no reason given, no such
    event, already decided, workflow not running, not on the team).
    """
    if not reason.strip():
        raise Refused("give a --reason: an override is recorded with why it was made")
    handle = client.get_workflow_handle(event_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND and not attributes.namespace_not_found(exc):
            raise Refused(f"no event {event_id!r}") from exc
        raise
    record = await description.memo_value(RECORD_MEMO, type_hint=EventRecord)
    team = record.authority.security_team if record.authority else list(security_team)
    refused = None
    if user not in team:
        members = ", ".join(record.label(member) for member in team) or "nobody configured"
        refused = (
            f"{user} is not in the security team ({members}); only the security team may "
            "approve from the CLI"
        )
    if refused is None and record.event.step_up is not None:
        refused = (
            f"{event_id} needs a step-up ({record.event.step_up}): approve it in Slack, where "
            "Approve sends you a one-time link for your passkey"
        )
    if record.status is not EventStatus.PENDING:
        raise Refused(f"{event_id} is already {record.status.value}; nothing to approve")
    if description.status is not WorkflowExecutionStatus.RUNNING:
        raise Refused(f"{event_id}'s workflow is {description.status}; it cannot take decisions")
    names = record.authority.names if record.authority else {}
    click = Click(
        action=Action.APPROVE,
        user=user,
        at=datetime.now(UTC),
        via="cli",
        name=names.get(user),
        reason=reason.strip(),
        operator=operator,
        refused=refused,
    )
    await _signal(client, key, event_id, click)
    if refused is not None:
        raise Refused(refused)
    return record


# Step-up approvals (issue 15): Slack's *Approve* answers with a link; the passkey approves.

HOW_TO_REGISTER = (
    "Type `/powertrip passkey` for a one-time link to register one (Touch ID, Windows Hello, a "
    "security key)."
)


async def answer_with_step_up_link(
    client: Client,
    settings: Settings | None,
    record: EventRecord,
    user: str,
    shown: int | None = None,
) -> Delivery:
    """The reply to *Approve* on a step-up event by `user`, who may approve it: a one-time link
    to Powertrip's confirmation page for them alone (Slack shows it only to them), or, without a
    passkey, how to register one. Nothing is signalled: only the passkey approves
    (`deliver_step_up`)."""
    event = record.event
    if settings is None or settings.public_url is None:
        return Delivery(
            "step_up_unavailable",
            ":no_entry: This event needs a passkey to approve, and Powertrip has no "
            "`POWERTRIP_PUBLIC_URL` for its confirmation page: ask whoever runs Powertrip.",
        )
    store = await passkeys_of(client, user)
    if store is None or not store.credentials:
        owner = record.authority is not None and record.authority.actor_slack_user == user
        behalf = (
            " Until then a security-team member can approve on your behalf, with their own passkey."
            if owner
            else ""
        )
        return Delivery(
            "step_up_no_passkey",
            f":closed_lock_with_key: This event needs a passkey to approve, and you have none "
            f"yet. {HOW_TO_REGISTER}{behalf}",
        )
    try:
        link = await issue_step_up_link(client, settings, user=user, event=event, shown=shown)
    except PasskeyRefused as exc:
        return Delivery(
            "step_up_failed",
            f":warning: Powertrip could not make your link ({exc.refusal.value}): try again.",
        )
    until = link.expires_at.strftime("%H:%M:%S UTC")
    return Delivery(
        "step_up_link",
        f":closed_lock_with_key: *This event needs your passkey.* <{link.url}|Approve with your "
        f"passkey> on Powertrip's page: a one-time link for you alone, valid until {until}. "
        "Nothing is approved until your passkey confirms it there.",
    )


async def deliver_step_up(client: Client, key: str, outcome: StepUpOutcome) -> Delivery:
    """What a step-up page's passkey check (`powertrip.services.stepup.complete_step_up`) comes
    to, delivered like every decision: checked against the event's own record, signed, signalled.

    `StepUpVerified`: the approval by the link's user, marked `step_up: passkey` with the
    credential. `StepUpRefused`: a refused approval for the event's timeline (why: link used,
    expired, another user's passkey, ...). `reply` is plain text for the page. Raises RPCError
    when Temporal fails."""
    if outcome.event_id is None or outcome.user is None:
        return Delivery("unknown", "Powertrip does not know this link.")
    record = await event_record(client, outcome.event_id)
    if record is None:
        return Delivery("unknown", "Powertrip does not know this event.")
    names = record.authority.names if record.authority else {}
    click = Click(
        action=Action.APPROVE,
        user=outcome.user,
        name=names.get(outcome.user),
        at=datetime.now(UTC),
        via="slack",
        shown=outcome.shown if isinstance(outcome, StepUpVerified) else None,
    )
    refused: str | None
    reply: str | None
    if isinstance(outcome, StepUpRefused):
        if record.status is not EventStatus.PENDING:
            return Delivery("stale", f"This event is already {record.status.value}.")
        refused = outcome.timeline_detail()
        outcome_name, reply = "refused", None
    else:
        click = click.model_copy(
            update={"step_up": outcome.step_up, "credential": outcome.credential}
        )
        refusal = record.refusal(Action.APPROVE, outcome.user)
        if refusal is not None and refusal.stale:
            return Delivery("stale", refusal.plain)
        # A group's question: the link carries how many events its message listed when
        # *Approve* was pressed; those that joined since are not approved unseen.
        refused = refusal.plain if refusal else record.shown_refusal(click)
        outcome_name = "refused" if refused else "delivered"
        reply = refused or f"Approved with your passkey “{outcome.credential.label}”."
    try:
        await _signal(client, key, outcome.event_id, click.model_copy(update={"refused": refused}))
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        if refused is None:
            return Delivery(
                "closed",
                "This event closed before your approval arrived, so it was not recorded.",
            )
    return Delivery(outcome_name, reply)

"""Record histories of every Powertrip workflow as the code is today, for the replay test.

    .venv/bin/python -m tests.histories.record [GENERATION]

Runs each path a real workflow takes on the time-skipping test server, with the real worker and
the fake Slack and fake Papertrail over HTTP, and writes one JSON history per path into
`tests/histories/<GENERATION>/<workflow>/<path>.json` (GENERATION defaults to today's date).
Together the paths pass through every `workflow.patched` branch of `workflows/patches.py`;
`tests/test_replay.py` checks that they do and replays every generation through today's code.

Record a new generation after a change adds a patch (so the new branch is replayed too); keep
the older generations until the patches they need are retired (the ledger says when).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from powertrip.binaries import temporal_test_server
from powertrip.contracts.approval import SIGNALS_PER_RUN, Action, ApprovalInput, TimelineKind
from powertrip.contracts.conflict import ConflictReport, conflict_workflow_id
from powertrip.contracts.expectations import Expectation
from powertrip.contracts.passkeys import (
    PASSKEY_DECIDED_SIGNAL,
    PASSKEY_WORKFLOW,
    LinkPurpose,
    NoticeKind,
    PasskeyDecided,
    PasskeyNotice,
    PasskeyStore,
    PasskeyUpdate,
    RecordAssertion,
    passkey_workflow_id,
)
from powertrip.contracts.polling import PollInput, PollState, StaleEvent
from powertrip.contracts.reminders import (
    DUE_SIGNAL,
    DigestLine,
    DueReminder,
    reminder_collector_ids,
)
from powertrip.contracts.reviews import ReviewPacing, pacer_id
from powertrip.devserver import start_dev_server
from powertrip.escalation import EscalationPolicy
from powertrip.models import CredentialRef, RawEvent, StepUpMethod
from powertrip.sandbox.fake_pagerduty import (
    FakePagerDuty,
    InjectedFailure,
    create_fake_pagerduty_app,
)
from powertrip.sandbox.fake_papertrail import FakePapertrail, create_fake_papertrail_app
from powertrip.sandbox.fake_slack import (
    FakeSlack,
    FakeUser,
    create_fake_slack_app,
)
from powertrip.sandbox.fake_slack import InjectedFailure as SlackFailure
from powertrip.sandbox.tls import ensure_certificate
from powertrip.services.expectations import (
    Limits,
    create_expectation,
    list_expectations,
    new_expectation,
    revoke_expectation,
)
from powertrip.services.starts import (
    announce_passkey,
    ensure_reminder_digest,
    report_stale,
    request_review,
    search_attributes_for,
    summary_for,
)
from powertrip.services.stepup import (
    Link,
    decide_registration,
    issue_step_up_link,
    notice_state,
)
from powertrip.settings import Settings
from powertrip.signing import signed_click
from powertrip.temporal import ensure_search_attributes
from tests.harness import (
    add_passkey,
    claim_passkey_link,
    click,
    decide,
    eventually,
    make_config,
    make_event,
    make_settings,
    passkey,
    running_worker,
    state_eventually,
)
from tests.servers import (
    DECISION_KEY,
    PAGERDUTY_ROUTING_KEY,
    PAPERTRAIL_TOKEN,
    SECURITY_CHANNEL,
    SLACK_TOKEN,
    ServedApp,
)
from workflows.approval import ApprovalWorkflow
from workflows.conflict import ConflictWorkflow
from workflows.poll import PollWorkflow

HERE = Path(__file__).resolve().parent
DIGEST_AFTER = 5  # the config default: more reminders than this due together make a digest
FLOOD = 6  # forged decisions in the flooded path: its `signals_per_run`


@dataclass
class Stack:
    env: WorkflowEnvironment
    settings: Settings
    slack: FakeSlack
    papertrail: FakePapertrail
    pagerduty: FakePagerDuty
    out: Path

    @property
    def client(self) -> Client:
        return self.env.client


def _posted(fake: FakeSlack, channel: str, at_least: int = 1) -> bool:
    return sum(m.channel == channel for m in fake.messages.values()) >= at_least


async def _start(
    stack: Stack,
    name: str,
    *,
    stale: bool = False,
    renotify_seconds: float = 15 * 60,
    escalation: EscalationPolicy | None = None,
    signals_per_run: int = SIGNALS_PER_RUN,
    **fields: Any,
) -> WorkflowHandle:
    """Alice's login `history-<name>` asked by a new ApprovalWorkflow; `fields`: the event's."""
    event = make_event(
        "alice", provider_id=f"history-{name}", renotify_after_seconds=renotify_seconds, **fields
    )
    if escalation is not None:
        event = event.model_copy(update={"escalation": escalation})
    return await stack.client.start_workflow(
        ApprovalWorkflow.run,
        ApprovalInput(event=event, stale=stale, signals_per_run=signals_per_run),
        id=event.event_id,
        task_queue=stack.settings.task_queue,
        search_attributes=search_attributes_for(event),
        static_summary=summary_for(event),
    )


async def _dm_sent(stack: Stack) -> None:
    await eventually(lambda: _posted(stack.slack, "D0ALICE"))


async def approve(stack: Stack) -> WorkflowHandle:
    """The owner approves their own login: no patched branch on the way."""
    handle = await _start(stack, "approve")
    await _dm_sent(stack)
    await decide(handle, Action.APPROVE, "U0ALICE")
    return handle


async def not_me_acknowledge(stack: Stack) -> WorkflowHandle:
    """Not me (publish-incident-message), a reminder with no digest workflow running
    (reminder-digest, the fallback), an ignored approval, the team acknowledges
    (recheck-security-team)."""
    handle = await _start(stack, "not_me_acknowledge")
    await _dm_sent(stack)
    await decide(handle, Action.REPORT, "U0ALICE")
    await eventually(lambda: _posted(stack.slack, SECURITY_CHANNEL))
    await stack.env.sleep(timedelta(minutes=16))
    await eventually(lambda: _posted(stack.slack, SECURITY_CHANNEL, at_least=2), within=90)
    await decide(handle, Action.APPROVE, "U0ALICE")
    await decide(handle, Action.ACKNOWLEDGE, "U0SEC1")
    return handle


async def reminders_own(stack: Stack) -> WorkflowHandle:
    """The digest workflow runs but this reminder is due alone: it posts its own."""
    await ensure_reminder_digest(stack.client, stack.settings.task_queue, DIGEST_AFTER)
    handle = await _start(stack, "reminders_own")
    await _dm_sent(stack)
    await stack.env.sleep(timedelta(minutes=16))
    await eventually(lambda: _posted(stack.slack, SECURITY_CHANNEL), within=90)
    await decide(handle, Action.APPROVE, "U0ALICE")
    return handle


async def reminders_in_digest(stack: Stack) -> WorkflowHandle:
    """More reminders due together than `digest_after`: one digest lists them all; the security
    team then approves on the owner's behalf (recheck-security-team).

    On the dev server in real time: the time-skipping server jumps to the digest's gathering
    timer between two workflows' tasks, so reminders due together never gather there. The
    digest is made for more than one reminder: on a loaded machine the six reminders spread
    over more than its 5 s gathering window, and none made a digest of more than five."""
    await ensure_reminder_digest(stack.client, stack.settings.task_queue, 1)
    handles = await asyncio.gather(
        *(
            _start(stack, f"reminders_in_digest{'' if i == 0 else f'_{i}'}", renotify_seconds=4)
            for i in range(DIGEST_AFTER + 1)
        )
    )

    def digest_posted() -> bool:
        return any("events still need a decision" in m.text for m in stack.slack.messages.values())

    await eventually(digest_posted, within=120)
    for handle in handles:
        await eventually(lambda h=handle: _reminded(h), within=90)  # type: ignore[misc]
        await decide(handle, Action.APPROVE, "U0SEC1")
    for handle in handles[1:]:
        await handle.result()
    return handles[0]


async def contested(stack: Stack) -> WorkflowHandle:
    """The security team approves on the owner's behalf (contest-approval-on-behalf): the owner's
    DM keeps *Not me*, the owner presses it, the event reopens as reported and the team
    acknowledges. Every decision is verified on the way (verify-decisions)."""
    handle = await _start(stack, "contested")
    await _dm_sent(stack)
    await decide(handle, Action.APPROVE, "U0SEC1")
    await state_eventually(handle, lambda r: r.contest_until is not None)
    await decide(handle, Action.REPORT, "U0ALICE")
    await eventually(lambda: _posted(stack.slack, SECURITY_CHANNEL))
    await decide(handle, Action.ACKNOWLEDGE, "U0SEC1")
    return handle


async def contest_closed(stack: Stack) -> WorkflowHandle:
    """Approved on the owner's behalf; the owner says nothing and the contest window closes."""
    handle = await _start(stack, "contest_closed")
    await _dm_sent(stack)
    await decide(handle, Action.APPROVE, "U0SEC1")
    await state_eventually(handle, lambda r: r.contest_until is not None)
    await stack.env.sleep(timedelta(days=8))
    return handle


async def rejected(stack: Stack) -> WorkflowHandle:
    """Decisions that change nothing (verify-decisions): an unsigned signal, one signed with
    another key, a click refused for lack of authority and the same signed click again (a
    replay); then the owner approves."""
    handle = await _start(stack, "rejected")
    await _dm_sent(stack)
    await handle.signal(ApprovalWorkflow.decide, click(Action.APPROVE, "U0ALICE"))
    forged = signed_click("not-the-decision-key" * 2, handle.id, Action.APPROVE, "U0ALICE")
    await handle.signal(ApprovalWorkflow.decide, forged)
    refused = signed_click(DECISION_KEY, handle.id, Action.APPROVE, "U0MALLORY")
    await handle.signal(ApprovalWorkflow.decide, refused)
    await handle.signal(ApprovalWorkflow.decide, refused)
    await state_eventually(handle, lambda r: len(r.timeline) >= 6)
    await decide(handle, Action.APPROVE, "U0ALICE")
    return handle


async def step_up(stack: Stack) -> WorkflowHandle:
    """A step-up event (`step_up: passkey`, step-up-approvals): a plain approval is refused, a
    refused step-up is traced, then the owner's approval confirmed with a passkey counts."""
    handle = await _start(stack, "step_up", step_up=StepUpMethod.PASSKEY)
    await _dm_sent(stack)
    await decide(handle, Action.APPROVE, "U0ALICE")
    await decide(handle, Action.APPROVE, "U0ALICE", refused="step-up refused: link_used")
    await state_eventually(handle, lambda r: len(r.timeline) >= 4)
    credential = CredentialRef(credential_id="Y3JlZC0x", label="MacBook Touch ID")
    await decide(
        handle, Action.APPROVE, "U0ALICE", step_up=StepUpMethod.PASSKEY, credential=credential
    )
    return handle


async def flooded(
    stack: Stack, name: str = "flooded", escalation: EscalationPolicy | None = None
) -> WorkflowHandle:
    """A flood of forged decisions, signed and unsigned, verified in one batch
    (verify-decisions-in-batches); `signals_per_run` of them and the run continues as new
    (continue-as-new-before-signal-limit) with a reminder still due; the owner reports it in the
    next run and the team acknowledges. Writes the first run (the continued one: `_continued`).
    With `escalation`: the flood comes once its page is open (escalation-schedule), which the
    next run carries."""
    stack.slack.reset()
    handle = await _start(stack, name, escalation=escalation, signals_per_run=FLOOD)
    await _dm_sent(stack)
    if escalation is not None:
        await stack.env.sleep(timedelta(hours=1, minutes=5))
        await _paged(stack, handle)
    forged_key = "not-the-decision-key" * 2
    for n in range(FLOOD):
        signed = signed_click(forged_key, handle.id, Action.APPROVE, "U0MALLORY")
        await handle.signal(
            ApprovalWorkflow.decide, signed if n % 2 else click(Action.APPROVE, "U0MALLORY")
        )
    first_run = handle.first_execution_run_id
    await eventually(lambda: _continued(stack.client.get_workflow_handle(handle.id), first_run))
    return handle


async def flooded_then(stack: Stack, handle: WorkflowHandle) -> None:
    """The next run of `flooded`: the owner's *Not me*, the team's acknowledgement."""
    next_run = stack.client.get_workflow_handle(handle.id)
    await decide(next_run, Action.REPORT, "U0ALICE")
    await eventually(lambda: _posted(stack.slack, SECURITY_CHANNEL), within=30)
    await decide(next_run, Action.ACKNOWLEDGE, "U0SEC1")


async def _reminded(handle: WorkflowHandle) -> bool:
    record = await handle.query(ApprovalWorkflow.state)
    return any(entry.what == "reminded" for entry in record.timeline)


async def stale(stack: Stack) -> WorkflowHandle:
    """Found by a backfill long after it happened (backfill-stale-no-dm): no DM, no reminders;
    the team approves."""
    handle = await _start(stack, "stale", stale=True)

    async def noted() -> bool:
        record = await handle.query(ApprovalWorkflow.state)
        return any(entry.what == "stale" for entry in record.timeline)

    await eventually(noted)
    await decide(handle, Action.APPROVE, "U0SEC1")
    return handle


async def not_me_first(stack: Stack) -> WorkflowHandle:
    """Clicks queued while no worker runs: the team approves, then the owner says Not me. The
    Not me is taken first (not-me-before-queued-approval), the approval is ignored, the team
    acknowledges. Started before the worker, so both clicks are waiting when it comes."""
    handle = await _start(stack, "not_me_first")
    await decide(handle, Action.APPROVE, "U0SEC1")
    await decide(handle, Action.REPORT, "U0ALICE")
    return handle


async def not_me_first_then(stack: Stack, handle: WorkflowHandle) -> None:
    await eventually(lambda: _posted(stack.slack, SECURITY_CHANNEL), within=30)
    await decide(handle, Action.ACKNOWLEDGE, "U0SEC1")


# Reminders every 15 minutes and one page after an hour (`pagerduty: {page_after: 1h}`).
PAGE_AFTER_AN_HOUR = EscalationPolicy.from_renotify(timedelta(minutes=15)).with_one_page(
    timedelta(hours=1)
)


async def _paged(stack: Stack, handle: WorkflowHandle, status: str = "open") -> None:
    async def page_is() -> bool:
        record = await handle.query(ApprovalWorkflow.state)
        return any(page.status == status for page in record.pages)

    await eventually(page_is, within=90)


def _expectation(actor: str, hours: float, reason: str) -> Expectation:
    return new_expectation(
        actor=actor,
        hosts=[],
        rules=[],
        until=datetime.now(UTC) + timedelta(hours=hours),
        reason=reason,
        created_by="U0ALICE",
        via="api",
    )


async def expected(stack: Stack) -> WorkflowHandle:
    """Alice expected her login (expectation-approvals): approved at once, nobody asked. Needs
    visibility, so it runs on the dev server; the expectation is revoked afterwards."""
    limits = Limits.from_config(make_config())
    await ensure_search_attributes(stack.client, stack.client.namespace)
    expectation = await create_expectation(
        stack.client,
        DECISION_KEY,
        stack.settings.task_queue,
        _expectation("alice", 1, "history: expected work"),
        limits,
    )
    await eventually(lambda: _listed(stack, expectation.id))
    handle = await _start(stack, "expected")
    await handle.result()
    await revoke_expectation(stack.client, DECISION_KEY, expectation.id, "U0ALICE", "api", limits)
    await stack.client.get_workflow_handle(expectation.id).result()
    return handle


async def _listed(stack: Stack, expectation_id: str) -> bool:
    return any(e.id == expectation_id for e in await list_expectations(stack.client, "alice"))


async def _expectation_expired(stack: Stack, out: Path) -> Path:
    """An expectation whose timer ends it (time-skipping)."""
    expectation = await create_expectation(
        stack.client,
        DECISION_KEY,
        stack.settings.task_queue,
        _expectation("alice", 2, "history: expires"),
        Limits.from_config(make_config()),
    )
    handle = stack.client.get_workflow_handle(expectation.id)
    await stack.env.sleep(timedelta(hours=2, minutes=1))
    return await save(handle, out / "expectation" / "expired.json")


async def page_then_approve(stack: Stack) -> WorkflowHandle:
    """Nobody decides for an hour: reminders (escalation-schedule), a page to the fake Events
    API; the owner approves and the page is resolved (pages-follow-decisions)."""
    handle = await _start(stack, "page_then_approve", escalation=PAGE_AFTER_AN_HOUR)
    await _dm_sent(stack)
    await stack.env.sleep(timedelta(hours=1, minutes=5))
    await _paged(stack, handle)
    await decide(handle, Action.APPROVE, "U0ALICE")
    return handle


async def not_me_paged(stack: Stack) -> WorkflowHandle:
    """A Not me pages at once (not-me-page); the security team acknowledges: the page is
    acknowledged and resolved (pages-follow-decisions)."""
    handle = await _start(stack, "not_me_paged", escalation=PAGE_AFTER_AN_HOUR)
    await _dm_sent(stack)
    await decide(handle, Action.REPORT, "U0ALICE")
    await _paged(stack, handle)
    await decide(handle, Action.ACKNOWLEDGE, "U0SEC1")
    return handle


async def page_called_off(stack: Stack) -> WorkflowHandle:
    """The page falls due while PagerDuty fails; the owner approves before it recovers: the
    trigger is cancelled and a resolve follows once PagerDuty answers again."""
    stack.pagerduty.failures.append(InjectedFailure(status=503, times=4))
    handle = await _start(stack, "page_called_off", escalation=PAGE_AFTER_AN_HOUR)
    await _dm_sent(stack)
    await stack.env.sleep(timedelta(hours=1, seconds=20))
    await _paged(stack, handle, status="sending")
    await decide(handle, Action.APPROVE, "U0ALICE")
    await stack.env.sleep(timedelta(minutes=10))
    return handle


GROUP_WINDOW = 600.0  # the config default: 10 minutes


async def grouped(stack: Stack) -> WorkflowHandle:
    """Two of alice's logins within the grouping window (grouped-questions): each joins the one
    GroupWorkflow (an activity), which asks once and shows the second on its message (a
    debounced update); alice's approval pressed on a message that listed only the first is
    refused (group-approves-what-it-showed), then she approves the message listing both and
    each member verifies the forwarded decision as signed for its group. Returns the first
    member."""
    first = await _start(stack, "grouped", group_window_seconds=GROUP_WINDOW)
    second = await _start(stack, "grouped_second", group_window_seconds=GROUP_WINDOW)

    async def group_of(handle: WorkflowHandle) -> str | None:
        return (await handle.query(ApprovalWorkflow.state)).group

    group_id = await eventually(lambda: group_of(first))
    assert await eventually(lambda: group_of(second)) == group_id
    await _dm_sent(stack)
    await eventually(
        lambda: any("2 events of" in m.text for m in stack.slack.messages.values()), within=30
    )
    group = stack.client.get_workflow_handle(group_id)
    await decide(group, Action.APPROVE, "U0ALICE", shown=1)
    await eventually(lambda: _refused_on(group))
    await decide(group, Action.APPROVE, "U0ALICE", shown=2)
    await save(group, stack.out / "group" / "approve.json")
    await second.result()
    return first


async def _refused_on(handle: WorkflowHandle) -> bool:
    record = await handle.query(ApprovalWorkflow.state)
    return any(entry.what is TimelineKind.REFUSED for entry in record.timeline)


async def digest_backlog(stack: Stack, digest: WorkflowHandle) -> None:
    """More than two full batches due at once (reminder-digest-drains-backlog): after the
    first 200, a full batch still waits, so the next 200 go after a one-second pause, not the
    gathering window; then the rest."""
    line = DigestLine(event=make_event("alice", provider_id="history-backlog"), asked="<@U0ALICE>")

    def digests() -> int:
        return sum("events still need a decision" in m.text for m in stack.slack.messages.values())

    before = digests()
    await asyncio.gather(
        *(
            digest.signal(DUE_SIGNAL, DueReminder(event_id=f"backlog-{n}", cycle="c", line=line))
            for n in range(450)
        )
    )

    def all_posted() -> bool:
        return digests() >= before + 3

    await eventually(all_posted, within=120)


APPROVAL: dict[str, Callable[[Stack], Awaitable[WorkflowHandle]]] = {
    "approve": approve,
    "not_me_acknowledge": not_me_acknowledge,
    "reminders_own": reminders_own,
    "reminders_in_digest": reminders_in_digest,
    "stale": stale,
    "contested": contested,
    "contest_closed": contest_closed,
    "rejected": rejected,
    "page_then_approve": page_then_approve,
    "not_me_paged": not_me_paged,
    "page_called_off": page_called_off,
    "step_up": step_up,
    "grouped": grouped,
    "expected": expected,
}
# reminders_in_digest runs in real time: the owner may contest the team's approvals for seconds.
CONFIGS = {"reminders_in_digest": make_config(contest_window="2s")}
# Paths that need the dev server: real time, or visibility (expectations are found by a list).
DEV_SERVER = {"reminders_in_digest", "expected"}


async def _poll(stack: Stack, name: str, down: bool, poll: PollInput) -> WorkflowHandle:
    stack.papertrail.down = down
    stack.papertrail.add("Accepted publickey for alice from 203.0.113.7 port 1 ssh2")
    return await stack.client.start_workflow(
        PollWorkflow.run, poll, id=f"history-{name}", task_queue=stack.settings.task_queue
    )


def _poll_shapes() -> dict[str, tuple[bool, PollInput]]:
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "poll_ok": (False, PollInput(source="papertrail")),
        "poll_failed_alert": (True, PollInput(source="papertrail", alert_after_seconds=0)),
        "poll_recovered": (
            False,
            PollInput(
                source="papertrail",
                state=PollState(failing_since=long_ago, alerted=True, last_error="HTTP 503"),
            ),
        ),
    }


async def record(generation: str, root: Path = HERE) -> list[Path]:
    out = root / generation
    slack = FakeSlack(token=SLACK_TOKEN, channels=[SECURITY_CHANNEL])
    for user_id, name in [("U0ALICE", "alice"), ("U0BOB", "bob"), ("U0SEC1", "sec1")]:
        slack.users[user_id] = FakeUser(id=user_id, name=name, email=f"{name}@example.com")
    papertrail = FakePapertrail(token=PAPERTRAIL_TOKEN)
    pagerduty = FakePagerDuty(routing_keys={PAGERDUTY_ROUTING_KEY})
    written: list[Path] = []
    tls = Path(tempfile.mkdtemp(prefix="powertrip-record-")) / "cert.pem"
    ensure_certificate(tls, tls.with_name("key.pem"))
    async with (
        ServedApp(create_fake_slack_app(slack)) as slack_app,
        ServedApp(create_fake_papertrail_app(papertrail)) as papertrail_app,
        ServedApp(
            create_fake_pagerduty_app(pagerduty), tls=(tls, tls.with_name("key.pem"))
        ) as pagerduty_app,
    ):
        settings = make_settings(
            slack_app.url + "/api/",
            papertrail_api_token=PAPERTRAIL_TOKEN,
            papertrail_api_url=papertrail_app.url + "/api/v1/",
            pagerduty_routing_key=PAGERDUTY_ROUTING_KEY,
            pagerduty_events_url=pagerduty_app.url,
            pagerduty_ca_file=tls,
        )
        for name, scenario in APPROVAL.items():
            # A fresh server each: the digest workflow one path starts must not be in the next.
            server = start_dev_server() if name in DEV_SERVER else _server()
            async with await server as env:
                stack = Stack(env, settings, slack, papertrail, pagerduty, out)
                slack.reset()
                pagerduty.reset()
                async with running_worker(env.client, settings, CONFIGS.get(name)):
                    handle = await scenario(stack)
                    written.append(await save(handle, out / "approval" / f"{name}.json"))
                    if name == "reminders_in_digest":
                        digest = env.client.get_workflow_handle(
                            f"powertrip-reminder-digest-{settings.task_queue}"
                        )
                        history = await digest.fetch_history()
                        written.append(write_history(history, out / "reminder_digest/burst.json"))
                        written.append(await _busiest_collector(stack, out))
                        await digest_backlog(stack, digest)
                        history = await digest.fetch_history()
                        written.append(write_history(history, out / "reminder_digest/backlog.json"))
                    if name == "expected":
                        [expectation] = [
                            w.id
                            async for w in env.client.list_workflows(
                                "WorkflowType = 'ExpectationWorkflow'"
                            )
                        ]
                        written.append(
                            await save(
                                env.client.get_workflow_handle(expectation),
                                out / "expectation" / "revoked.json",
                            )
                        )
        async with await _server() as env:
            stack = Stack(env, settings, slack, papertrail, pagerduty, out)
            slack.reset()
            handle = await not_me_first(stack)
            async with running_worker(env.client, settings):
                await not_me_first_then(stack, handle)
                written.append(await save(handle, out / "approval" / "not_me_first.json"))
                for name, (down, poll) in _poll_shapes().items():
                    handle = await _poll(stack, name, down, poll)
                    written.append(await save(handle, out / "poll" / f"{name}.json"))
                papertrail.down = False
                written.append(await _review(stack, out))
                written.append(await _review_pacer(stack, out))
                written.append(await _conflict(stack, out))
                written.append(await _stale_digest(stack, out))
                written.append(await _passkeys(stack, out))
                handle = await flooded(stack)
                written += await _flooded(stack, out, "flooded", handle, flooded_then)
                pagerduty.reset()
                handle = await flooded(stack, "paged_flooded", PAGE_AFTER_AN_HOUR)
                written += await _flooded(stack, out, "paged_flooded", handle, paged_flooded_then)
                written.append(await _passkey_notice(stack, out))
                written.append(await _expectation_expired(stack, out))
                # Last: the digest workflow it starts would take the reminders of later paths.
                written.append(await _digest_retried(stack, out))
    return written


async def paged_flooded_then(stack: Stack, handle: WorkflowHandle) -> None:
    """The next run of `flooded` with a page open: the owner approves, and the page the run
    before sent is resolved (pages-follow-decisions)."""
    await decide(stack.client.get_workflow_handle(handle.id), Action.APPROVE, "U0ALICE")


async def _flooded(
    stack: Stack,
    out: Path,
    name: str,
    handle: WorkflowHandle,
    then: Callable[[Stack, WorkflowHandle], Awaitable[None]],
) -> list[Path]:
    """Both runs of a flooded path: the one that continued as new, and the next one, which
    starts from the carried record and reminder (and escalation: steps taken, pages)."""
    await then(stack, handle)
    await handle.result()
    first = stack.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    return [
        write_history(await first.fetch_history(), out / "approval" / f"{name}.json"),
        await save(
            stack.client.get_workflow_handle(handle.id), out / "approval" / f"{name}_next.json"
        ),
    ]


async def _review(stack: Stack, out: Path) -> Path:
    raw = RawEvent(source="papertrail", provider_id="history-review", message="odd line 42")
    workflow_id, _ = await request_review(stack.client, raw, stack.settings.task_queue)
    handle = stack.client.get_workflow_handle(workflow_id)
    return await save(handle, out / "unrecognised" / "review.json")


async def _review_pacer(stack: Stack, out: Path) -> Path:
    """More shapes in one hour than are posted alone: the source's pacer posts the first ones
    and gathers the rest into one digest, then ends with the hour."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for n in range(ReviewPacing().before_digest + 2):
        raw = RawEvent(
            source="pacer", provider_id=f"history-pacer-{n}", message=f"odd shape {'x' * n} 7"
        )
        review, _ = await request_review(stack.client, raw, stack.settings.task_queue, now=hour)
        await stack.client.get_workflow_handle(review).result()
    pacer = stack.client.get_workflow_handle(pacer_id(stack.settings.task_queue, "pacer", hour))
    await stack.env.sleep(timedelta(hours=1, minutes=5))  # the digest's wait, then the hour
    return await save(pacer, out / "review_pacer" / "hour.json")


async def _conflict(stack: Stack, out: Path) -> Path:
    recorded = make_event("alice", provider_id="history-conflict")
    arriving = recorded.model_copy(update={"actor": "mallory"})
    report = ConflictReport(
        event_id=recorded.event_id, recorded=recorded, arriving=arriving, arriving_digest="d" * 64
    )
    handle = await stack.client.start_workflow(
        ConflictWorkflow.run,
        report,
        id=conflict_workflow_id(report.event_id, report.arriving_digest),
        task_queue=stack.settings.task_queue,
    )
    return await save(handle, out / "conflict" / "report.json")


async def _busiest_collector(stack: Stack, out: Path) -> Path:
    """The history of the reminder collector that handed on the most of the burst's reminders
    (reminders-via-collectors: which one takes an event depends on its id)."""
    longest: WorkflowHistory | None = None
    for collector in reminder_collector_ids(stack.settings.task_queue):
        history = await stack.client.get_workflow_handle(collector).fetch_history()
        if longest is None or len(history.events) > len(longest.events):
            longest = history
    assert longest is not None
    return write_history(longest, out / "reminder_collector" / "burst.json")


async def _digest_retried(stack: Stack, out: Path) -> Path:
    """Slack fails the digest's post until it gives up (reminder-digest-retries-failed-batch):
    the digest keeps its batch, leaves out a reminder whose approval has stopped waiting, and
    posts the rest when Slack is back."""
    await ensure_reminder_digest(stack.client, stack.settings.task_queue, 1)
    digest = stack.client.get_workflow_handle(
        f"powertrip-reminder-digest-{stack.settings.task_queue}"
    )
    line = DigestLine(event=make_event("alice", provider_id="history-retried"), asked="<@U0ALICE>")
    now = await stack.env.get_current_time()
    before = len([m for m in stack.slack.messages.values() if m.channel == SECURITY_CHANNEL])
    stack.slack.failures["chat.postMessage"].append(
        SlackFailure(method="chat.postMessage", status=503, times=100_000)
    )
    for n, cycle in enumerate([now, now, now - timedelta(minutes=2)]):
        reminder = DueReminder(event_id=f"retried-{n}", cycle=cycle.isoformat(), line=line)
        await digest.signal(DUE_SIGNAL, reminder)

    async def gave_up() -> bool:
        history = await digest.fetch_history()
        if any(
            e.HasField("activity_task_failed_event_attributes")
            or e.HasField("activity_task_timed_out_event_attributes")
            for e in history.events
        ):
            return True
        await stack.env.sleep(timedelta(seconds=3))  # the activity's retries, on timers
        return False

    await eventually(gave_up, within=60)
    stack.slack.failures.clear()
    await eventually(lambda: _posted(stack.slack, SECURITY_CHANNEL, before + 1), within=30)
    path = write_history(await digest.fetch_history(), out / "reminder_digest" / "retried.json")
    await digest.terminate("recorded")
    return path


async def _stale_digest(stack: Stack, out: Path) -> Path:
    event = make_event("alice", provider_id="history-stale-digest")
    workflow_id = await report_stale(
        stack.client,
        [StaleEvent.of(event)],
        "backfill of auth.log",
        timedelta(days=7),
        stack.settings.task_queue,
    )
    assert workflow_id is not None
    return await save(
        stack.client.get_workflow_handle(workflow_id), out / "stale_digest" / "digest.json"
    )


async def _passkeys(stack: Stack, out: Path) -> Path:
    """One user's passkey store through every update: a first passkey, a second one approved
    by the security team, a link that expires by its timer, a refused sign count, and the
    continue-as-new after `updates_per_run` updates. Writes the first run's history."""
    client, user = stack.client, "U0ALICE"
    settings = stack.settings.model_copy(update={"public_url": "http://localhost:8443"})
    first = await client.start_workflow(
        PASSKEY_WORKFLOW,
        PasskeyStore(user=user, user_name="alice", user_handle="aGFuZGxl", updates_per_run=14),
        id=passkey_workflow_id(user),
        task_queue=settings.task_queue,
    )
    await add_passkey(client, settings, passkey(1, sign_count=5))  # 4 updates: active, first
    await add_passkey(client, settings, passkey(2))  # 4 more: pending
    await decide_registration(
        client, user=user, pending_id="cred-2", approver="U0SEC1", approve=True
    )
    event = make_event("alice", provider_id="history-passkeys")
    await issue_step_up_link(client, settings, user=user, event=event)
    await stack.env.sleep(timedelta(seconds=settings.step_up_link_seconds + 1))  # expires
    token = (await issue_step_up_link(client, settings, user=user, event=event)).url
    link = Link.parse(token.rsplit("/", 1)[1])
    await claim_passkey_link(client, token.rsplit("/", 1)[1], LinkPurpose.STEP_UP)
    await first.execute_update(  # the 14th update: a counter that went back, then continue
        PasskeyUpdate.RECORD_ASSERTION,
        RecordAssertion(token_hash=link.token_hash, credential_id="cred-1", sign_count=3),
    )
    await eventually(lambda: _continued(client.get_workflow_handle(first.id), first.result_run_id))
    first_run = client.get_workflow_handle(first.id, run_id=first.first_execution_run_id)
    return write_history(await first_run.fetch_history(), out / "passkeys" / "store.json")


async def _passkey_notice(stack: Stack, out: Path) -> Path:
    """A passkey waiting for approval: the team is resolved, the notice posted, a security-team
    member approves it with their own passkey, and the notice shows who did."""
    notice = PasskeyNotice(
        kind=NoticeKind.PENDING,
        user="U0ALICE",
        user_name="alice",
        credential=CredentialRef(credential_id="Y3JlZC0y", label="YubiKey"),
        at=datetime(2026, 11, 30, tzinfo=UTC),
    )
    notice_id = await announce_passkey(stack.client, stack.settings.task_queue, notice)
    handle = stack.client.get_workflow_handle(notice_id)

    async def posted() -> bool:
        state = await notice_state(stack.client, notice_id)
        return state is not None and state.message is not None

    await eventually(posted)
    await handle.signal(
        PASSKEY_DECIDED_SIGNAL,
        PasskeyDecided(
            approved=True,
            by="U0SEC1",
            with_credential=CredentialRef(credential_id="c2VjLTE", label="sec1's laptop"),
            at=datetime(2026, 11, 30, 0, 5, tzinfo=UTC),
        ),
    )
    return await save(handle, out / "passkey_notice" / "pending_approved.json")


async def _continued(handle: WorkflowHandle, first_run: str | None) -> bool:
    return (await handle.describe()).run_id != first_run


async def _server() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server(), data_converter=pydantic_data_converter
    )
    await ensure_search_attributes(env.client, env.client.namespace)
    return env


async def save(handle: WorkflowHandle, path: Path) -> Path:
    """Wait for the workflow to finish and write its history to `path`."""
    await handle.result()
    return write_history(await handle.fetch_history(), path)


def write_history(history: WorkflowHistory, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Pretty-printed so a diff shows what a re-recording changed.
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    return path


if __name__ == "__main__":
    generation = sys.argv[1] if len(sys.argv) > 1 else date.today().isoformat()
    for path in asyncio.run(record(generation)):
        print(f"wrote {path.relative_to(HERE.parents[1])}")

"""The HIDS answer when more events match than one visibility page holds (dev server)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from powertrip.contracts.approval import EventRecord
from powertrip.hosts import HostMatch
from powertrip.models import Decision, DecisionKind, EventStatus, SecurityEvent
from powertrip.services.hids import MATCH_LIMIT, Answer, MatchQuestion, match
from powertrip.services.starts import search_attributes_for
from powertrip.visibility import WORKFLOW_TYPE
from powertrip.webui import WebUi
from tests.harness import eventually, make_event

# In the past, like real decisions: the session's dev server is shared with the audit-export
# tests, which read decisions by time.
T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
IDLE_QUEUE = "nobody-polls-match-truncated"


async def _seed(env: WorkflowEnvironment, event: SecurityEvent, status: EventStatus) -> None:
    """An event as its workflow would have recorded it; nobody runs these workflows."""
    record = EventRecord(event=event, status=status)
    if status is EventStatus.PENDING:
        await _start(env, event, status, record)
        return
    decision = Decision(kind=DecisionKind(status.value), by="U0ALICE", at=T0, via="slack")
    if status is EventStatus.REPORTED:
        record.report = decision
    else:
        record.decision = decision
    await _start(env, event, status, record)


async def _start(
    env: WorkflowEnvironment, event: SecurityEvent, status: EventStatus, record: EventRecord
) -> None:
    await env.client.start_workflow(
        WORKFLOW_TYPE,
        id=event.event_id,
        task_queue=IDLE_QUEUE,
        search_attributes=search_attributes_for(event, status),
        memo={"record": record},
    )


async def _count(env: WorkflowEnvironment, query: str, expected: int) -> bool:
    return (await env.client.count_workflows(query)).count >= expected


async def test_a_not_me_beyond_the_first_page_still_stops_an_approval(
    dev_env: WorkflowEnvironment,
) -> None:
    user, host = f"u{uuid.uuid4().hex[:8]}", f"h{uuid.uuid4().hex[:8]}"
    reported = make_event(user, host=host, occurred_at=T0 - timedelta(hours=20))
    await _seed(dev_env, reported, EventStatus.REPORTED)
    # Many approved logins since: visibility lists the newest first, the report falls off page 1.
    approved = [
        make_event(user, host=host, occurred_at=T0 - timedelta(minutes=n))
        for n in range(MATCH_LIMIT + 5)
    ]
    await asyncio.gather(*(_seed(dev_env, e, EventStatus.APPROVED) for e in approved))
    query = f'PowertripActor = "{user}"'
    await eventually(lambda: _count(dev_env, query, len(approved) + 1), within=20)
    question = MatchQuestion(
        host=host, user=user, at=T0, window=timedelta(days=1), host_match=HostMatch.SHORT
    )
    answer = await match(dev_env.client, question, WebUi(base_url="http://ui", namespace="default"))
    assert answer.truncated
    assert answer.answer is Answer.REPORTED
    assert not answer.approved


async def test_an_undecided_login_nearer_than_the_page_shows_is_not_read_as_approved(
    dev_env: WorkflowEnvironment,
) -> None:
    user, host = f"u{uuid.uuid4().hex[:8]}", f"h{uuid.uuid4().hex[:8]}"
    await _seed(dev_env, make_event(user, host=host, occurred_at=T0), EventStatus.PENDING)
    approved = [
        make_event(user, host=host, occurred_at=T0 - timedelta(minutes=n))
        for n in range(1, MATCH_LIMIT + 6)
    ]
    await asyncio.gather(*(_seed(dev_env, e, EventStatus.APPROVED) for e in approved))
    await eventually(lambda: _count(dev_env, f'PowertripActor = "{user}"', len(approved) + 1))
    question = MatchQuestion(
        host=host, user=user, at=T0, window=timedelta(hours=3), host_match=HostMatch.SHORT
    )
    answer = await match(dev_env.client, question, WebUi(base_url="http://ui", namespace="default"))
    assert answer.truncated
    assert answer.answer is Answer.PENDING
    assert answer.events[0].occurred_at == T0


async def test_copies_of_one_login_recorded_twice_answer_as_one_login(
    dev_env: WorkflowEnvironment,
) -> None:
    """Events recorded before natural identity existed (a backfill re-asked about a login the
    webhook had delivered): the copy still pending must not turn the approved login into
    `pending` or `ambiguous`."""
    user, host = f"u{uuid.uuid4().hex[:8]}", f"h{uuid.uuid4().hex[:8]}"
    approved = make_event(user, host=host, occurred_at=T0)
    copy = approved.model_copy(
        update={"event_id": f"syslog-l{uuid.uuid4().hex}", "occurred_at": T0 + timedelta(seconds=1)}
    )
    other = make_event(user, host=host, occurred_at=T0 + timedelta(seconds=2))  # another port
    await _seed(dev_env, approved, EventStatus.APPROVED)
    await _seed(dev_env, copy, EventStatus.PENDING)
    await eventually(lambda: _count(dev_env, f'PowertripActor = "{user}"', 2))
    ui = WebUi(base_url="http://ui", namespace="default")
    question = MatchQuestion(host=host, user=user, at=T0)
    answer = await match(dev_env.client, question, ui)
    assert (answer.answer, answer.approved) == (Answer.APPROVED, True)
    assert {e.event_id for e in answer.events if e.this_login} == {approved.event_id, copy.event_id}
    # A second, different login in the same seconds: now the question cannot tell them apart.
    await _seed(dev_env, other, EventStatus.APPROVED)
    await eventually(lambda: _count(dev_env, f'PowertripActor = "{user}"', 3))
    assert (await match(dev_env.client, question, ui)).answer is Answer.AMBIGUOUS
    pinned = question.model_copy(update={"address": approved.address, "port": approved.port})
    assert (await match(dev_env.client, pinned, ui)).answer is Answer.APPROVED

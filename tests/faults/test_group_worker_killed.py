"""A burst that is one group (one actor, one host, one rule, `group_window: 10m`), and one of two
workers SIGKILLed in the middle of it; the other keeps running, and the killed one is started
again. The burst is still one group: one DM, updated in place to show every event, every event
in that group and in no other, one *Approve* decides them all.

The killed worker is a real `python worker.py` process; the survivor runs in the test process
on the same task queue, so the killed worker's work (workflow tasks, Slack calls) moves to it.
Joins are Temporal updates-with-start on the group's id (README "Groups": "How it holds up"),
which is what keeps a retried or moved join from splitting the group. Who did what is read from
the workflows' histories (the `identity` of the worker on each task started).
tests/test_groups.py::test_a_worker_killed_mid_burst_neither_splits_nor_duplicates_the_group
cancels an in-process worker; this one kills a process, with a second worker alive."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from powertrip.config import load_config
from powertrip.contracts.approval import EventRecord, TimelineKind
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack
from tests.faults import approval_event, people_config, task_identities, worker_identity
from tests.harness import (
    WEBHOOK_HEADERS,
    alert,
    api_client,
    eventually,
    make_settings,
    papertrail_event,
    running_worker,
    slack_click,
)
from tests.processes import WorkerProcess
from workflows.approval import ApprovalWorkflow

BURST = 20
PAUSE = 0.15  # seconds between two commands of the burst
KILL_AT = 8  # commands delivered when the worker is killed
OWNER_DM = "D0ALICE"


def sudo_event(host: str, n: int) -> dict[str, Any]:
    """alice's `n`th sudo command on `host`, as a Papertrail search alert carries it."""
    event = papertrail_event(f"{host}-{n}", "alice", host=host)
    event.update(
        program="sudo",
        message=f"alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
        f"COMMAND=/usr/bin/tail -n {n} /var/log/nginx/error.log",
    )
    return event


async def deliver(http: httpx.AsyncClient, host: str, count: int, pause: float) -> list[str]:
    """`count` commands, one webhook delivery each, `pause` seconds apart; the events' ids."""
    ids = []
    for n in range(count):
        response = await http.post(
            "/webhooks/papertrail", json=alert(sudo_event(host, n)), headers=WEBHOOK_HEADERS
        )
        [result] = response.json()["results"]
        assert result["status"] == "started", result
        ids.append(str(result["event_id"]))
        await asyncio.sleep(pause)
    return ids


async def records(client: Client, ids: list[str]) -> list[EventRecord] | None:
    """Each event's state by query; None while a query times out (a run whose last task was
    on the killed worker is queried there until the server gives up on its sticky queue: on
    a busy machine that outlasted the query's own timeout once)."""
    try:
        return [
            await client.get_workflow_handle_for(ApprovalWorkflow.run, i).query(
                ApprovalWorkflow.state
            )
            for i in ids
        ]
    except RPCError as err:
        if err.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            raise
        return None


async def all_grouped(client: Client, ids: list[str], least: int) -> list[EventRecord] | None:
    found = await records(client, ids)
    return found if found and sum(r.group is not None for r in found) >= least else None


async def all_decided(client: Client, ids: list[str]) -> list[EventRecord] | None:
    found = await records(client, ids)
    return found if found and all(r.status is EventStatus.APPROVED for r in found) else None


def owner_dms(fake: FakeSlack) -> list[Any]:
    return [m for m in list(fake.messages.values()) if m.channel == OWNER_DM]


async def test_worker_sigkilled_mid_group_burst_with_a_second_worker_keeps_one_group(
    dev_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str, tmp_path: Path
) -> None:
    client = dev_env.client
    people_config(0, folder=tmp_path, group_window="10m")
    config_file = tmp_path / "powertrip.yaml"
    settings = make_settings(
        slack_api_url,
        temporal_address=client.service_client.config.target_host,
        config=config_file,
    )
    host = f"ops-{uuid.uuid4().hex[:6]}"
    # The doomed worker polls first, so it has work in hand when it dies (asserted below).
    async with (
        api_client(settings) as http,
        WorkerProcess(settings, config_file) as doomed,
        running_worker(client, settings, load_config(config_file)),  # the one that survives
    ):
        burst = asyncio.create_task(deliver(http, host, BURST, pause=PAUSE))
        # Mid-burst: commands keep arriving before, during and after the kill.
        await asyncio.sleep(KILL_AT * PAUSE)
        await doomed.kill()
        killed_at = time.monotonic()
        killed = worker_identity(doomed.pid)
        asked_at_kill = len(owner_dms(fake_slack))
        ids = await burst
        async with WorkerProcess(settings, config_file) as restarted:
            # Abandoned Slack calls are retried after their 20 s start-to-close timeout. The
            # question is watched in Slack: a query to a workflow the dead worker held waits.
            dm = await eventually(
                lambda: owner_dms(fake_slack)[0] if owner_dms(fake_slack) else None, within=60
            )
            await eventually(lambda: f"{BURST} events of" in dm.text, within=90)
            shown_after = time.monotonic() - killed_at
            group_id = approval_event(dm)
            done = await eventually(lambda: all_grouped(client, ids, BURST), within=30)
            assert group_id is not None and {r.group for r in done} == {group_id}
            said = await slack_click(http, "U0ALICE", "approve", group_id, dm, name="alice")
            assert said.status_code == 200
            decided = await eventually(lambda: all_decided(client, ids), within=60)
            group: EventRecord = await client.get_workflow_handle_for(
                ApprovalWorkflow.run, group_id
            ).result()
            restarted_as = worker_identity(restarted.pid)
            await asyncio.sleep(1)  # a late duplicate post would show by now
            dms = owner_dms(fake_slack)

    # One group: every event in it, each joined once, none in another; it counted 20.
    assert {r.group for r in decided} == {group_id}
    for r in decided:
        assert [e.detail for e in r.timeline if e.what is TimelineKind.GROUPED] == [
            f"group: {group_id}"
        ]
        assert r.decision is not None and (r.decision.by, r.decision.group) == ("U0ALICE", group_id)
    assert group.burst is not None and group.burst.members == BURST
    assert group.status is EventStatus.APPROVED
    # One question: one DM, never posted twice, updated in place.
    assert len(dms) == 1 and dms[0].ts == dm.ts
    posted = [
        c
        for c in fake_slack.calls
        if c["method"] == "chat.postMessage" and str(c["args"].get("channel", "")).endswith("ALICE")
    ]
    tasks = await task_identities(client, [*ids, group_id])
    by_killed, by_restarted = tasks[killed], tasks[restarted_as]
    by_survivor = sum(tasks.values()) - by_killed - by_restarted
    print(
        f"FIGURES {BURST} events, killed after ~{KILL_AT} (DM posted then: {asked_at_kill}); "
        f"1 group, {len(dms)} DM ({dm.updates} updates, {len(posted)} postMessage to the owner), "
        f"showing all {BURST} {shown_after:.0f} s after the kill; "
        f"tasks: killed worker {by_killed}, survivor {by_survivor}, restarted {by_restarted}"
    )
    assert by_killed > 0, "the killed worker had done nothing: nothing was tested"
    assert by_survivor > 0

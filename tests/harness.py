"""Helpers shared by the tests: events, configs, workers, and waiting for what a user would see."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx
import yaml
from google.protobuf.duration_pb2 import Duration
from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from api.main import create_app
from powertrip.config import PowertripConfig, config_from_mapping
from powertrip.contracts.approval import Action, Click, EventRecord, TimelineKind
from powertrip.contracts.expectations import ExpectedApproval
from powertrip.contracts.passkeys import (
    AddCredential,
    ClaimedLink,
    ClaimLink,
    Enrollment,
    LinkPurpose,
    OpenLink,
    PasskeyCredential,
    PasskeyUpdate,
    passkey_workflow_id,
)
from powertrip.contracts.reminders import HANDED_OFF
from powertrip.models import RawEvent, SecurityEvent
from powertrip.sandbox.fake_slack import FakeSlack, SlackMessage
from powertrip.sandbox.interactions import (
    block_action_payload,
    block_of,
    signed_request,
    slash_command_fields,
)
from powertrip.services.starts import (
    ResultStatus,
    start_approval,
)
from powertrip.services.stepup import Link, issue_registration_link
from powertrip.settings import Settings
from powertrip.signing import signed_click
from powertrip.temporal import ensure_search_attributes
from tests.servers import (
    CLI_DECISION_KEY,
    DECISION_KEY,
    SECURITY_CHANNEL,
    SIGNING_SECRET,
    SLACK_TOKEN,
    ServedApp,
    free_port,
)
from worker import running_workers
from workflows.approval import ApprovalWorkflow

T = TypeVar("T")


@activity.defn(name="find_expectation")
async def no_expectation(event: SecurityEvent) -> ExpectedApproval | None:
    """`find_expectation` faked by name for workers built by hand: nothing is expected."""
    return None


# The webhook and API tokens make_settings() configures.
WEBHOOK_HEADERS = {"Authorization": "Bearer hook-secret"}
API_HEADERS = {"Authorization": "Bearer api-secret"}
API_WRITE_HEADERS = {"Authorization": "Bearer api-write-secret"}

CONFIG_YAML = f"""
security_channel: {SECURITY_CHANNEL}
security_team: [U0SEC1]
users:
  alice: {{slack: U0ALICE}}
  bob: {{email: bob@example.com}}
  carol: {{email: carol@example.com}}
  ops: {{shared: true}}
bots: [deploy, oswaldo]
renotify_after: 15m
# Tests share a Temporal namespace, and alice's logins on bastion: each asked on its own unless a
# test of groups (tests/test_groups.py) asks for them.
group_window: off
"""


def make_config(**overrides: Any) -> PowertripConfig:
    data = yaml.safe_load(CONFIG_YAML)
    data.update(overrides)
    return config_from_mapping(data, Path.cwd(), "test config")


_EPHEMERAL_PORTS = iter(random.sample(range(32768, 61000), 61000 - 32768))


def ssh_line(user: str, address: str = "203.0.113.7", port: int | None = None) -> str:
    """sshd's line for a login. Each ssh connection has its own source port, so without one an
    ephemeral port no other line of this session had makes each line another login (natural
    identity, powertrip.identity). Drawn without repeats: the session shares one namespace, and
    a port drawn at random twice within two minutes made a test's login a `duplicate`."""
    port = next(_EPHEMERAL_PORTS) if port is None else port
    return f"Accepted publickey for {user} from {address} port {port} ssh2: ED25519 SHA256:abc"


_PORTS: dict[str, int] = {}


def port_for(provider_id: object) -> int:
    """A source port that is the same for one provider id and differs between ids.

    Handed out in order rather than hashed: the whole session shares one Temporal namespace, where
    two logins by one actor on one host from one address and port are one action (natural
    identity), so a hash collision between two tests' ids would make the second a duplicate."""
    key = str(provider_id)
    if key not in _PORTS:
        _PORTS[key] = 1024 + len(_PORTS) % (65536 - 1024)
    return _PORTS[key]


def papertrail_event(
    provider_id: int | str,
    user: str = "alice",
    host: str = "bastion",
    address: str = "203.0.113.7",
    at: datetime | None = None,
) -> dict[str, Any]:
    """One event of a Papertrail search alert, as Papertrail sends it; received `at` (default:
    a fixed time in the past; an expectation covers only what happens while it lasts)."""
    return {
        "id": provider_id,
        "received_at": at.isoformat() if at else "2026-11-27T01:02:03-08:00",
        "source_name": host,
        "source_ip": "10.0.0.5",
        "hostname": host,
        "program": "sshd",
        "severity": "Info",
        "facility": "Auth",
        # One delivery of one login: a retry of this provider id is the same line.
        "message": ssh_line(user, address=address, port=port_for(provider_id)),
    }


def alert(*events: dict[str, Any]) -> dict[str, Any]:
    """A Papertrail search-alert payload carrying `events`."""
    return {
        "events": list(events),
        "saved_search": {"id": 42, "name": "ssh logins"},
        "min_id": "1",
        "max_id": "2",
    }


async def deliver_login(
    http: httpx.AsyncClient,
    user: str = "alice",
    *,
    provider_id: str | None = None,
    address: str = "203.0.113.7",
) -> str:
    """Post a login through the Papertrail webhook; return the id of the event it started."""
    event = papertrail_event(provider_id or uuid.uuid4().hex[:16], user, address=address)
    response = await http.post("/webhooks/papertrail", json=alert(event), headers=WEBHOOK_HEADERS)
    [result] = response.json()["results"]
    assert result["status"] == "started", result
    return str(result["event_id"])


async def logins_asked(
    http: httpx.AsyncClient, fake: FakeSlack, count: int
) -> list[tuple[str, SlackMessage]]:
    """Deliver `count` logins of alice's and wait for each DM: [(event id, its DM), ...]."""
    events = [await deliver_login(http) for _ in range(count)]
    return [(e, await eventually(partial(message_for, fake, e, None))) for e in events]


def message_for(fake: FakeSlack, event_id: str, channel: str | None = None) -> SlackMessage | None:
    """The message whose buttons name this event (optionally in one channel)."""
    for message in fake.messages.values():
        if channel and message.channel != channel:
            continue
        for block in message.blocks:
            if any(e.get("value") == event_id for e in block.get("elements", [])):
                return message
    return None


def click_request(
    user: str,
    action_id: str,
    value: str,
    message: SlackMessage | None,
    reply_to: str | None = None,
    *,
    name: str | None = None,
    container: dict[str, Any] | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Slack sends when `user` presses a button on `message` (no message:
    a payload whose container names none); `name` is the clicker's Slack user name. The
    action's block id is the pressed button's on `message`, as Slack sends it (a group's
    question counts what it lists there)."""
    payload = block_action_payload(
        user,
        action_id,
        value,
        channel=message.channel if message else None,
        message_ts=message.ts if message else None,
        response_url=reply_to,
        block_id=block_of(message.blocks, action_id, value) if message else "decision",
    )
    if name:
        payload["user"]["username"] = name
    if container is not None:
        payload["container"] = container
    return signed_request(SIGNING_SECRET, payload, timestamp=timestamp)


async def slack_click(
    http: httpx.AsyncClient,
    user: str,
    action_id: str,
    value: str,
    message: SlackMessage | None,
    reply_to: str | None = None,
    **kw: Any,
) -> httpx.Response:
    """Post `click_request(...)` to the API's Slack interactivity URL."""
    body, headers = click_request(user, action_id, value, message, reply_to, **kw)
    return await http.post("/slack/interactions", content=body, headers=headers)


async def slash_command(
    http: httpx.AsyncClient, user: str, text: str, *, name: str | None = None
) -> str:
    """`user` types `/powertrip <text>` in Slack: the ephemeral answer Powertrip gives them."""
    fields = slash_command_fields(user, text, user_name=name)
    body, headers = signed_request(SIGNING_SECRET, {}, form=fields)
    response = await http.post("/slack/interactions", content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer.get("response_type") == "ephemeral", answer
    return str(answer["text"])


def make_event(actor: str = "alice", host: str = "bastion", **fields: Any) -> SecurityEvent:
    config = make_config()
    raw = RawEvent(
        source="papertrail",
        provider_id=fields.pop("provider_id", uuid.uuid4().hex[:12]),
        received_at=datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC),
        host=host,
        program="sshd",
        message=ssh_line(actor),
    )
    event = config.rule_set().recognise(raw)
    assert event is not None
    if "renotify_after_seconds" in fields and "escalation" not in fields:
        # What a rule with its own `renotify_after` builds: the policy reminds that often.
        every = timedelta(seconds=fields["renotify_after_seconds"])
        fields["escalation"] = event.escalation_policy().with_reminders_every(every)
    return event.model_copy(update=fields)


def settings_with_config(
    env: Any, slack_api_url: str, folder: Path, config_yaml: str, **overrides: Any
) -> Settings:
    """Settings for the API against `env`'s Temporal with `config_yaml` as its config file."""
    config = folder / "config.yaml"
    config.write_text(config_yaml)
    return make_settings(
        slack_api_url,
        temporal_address=env.client.service_client.config.target_host,
        config=config,
        **overrides,
    )


async def fresh_namespace(env: Any) -> Client:
    """A new, empty namespace on `env`'s dev server (with Powertrip's search attributes) and a
    client for it: events one test starts cannot be the same action as another test's (natural
    identity is namespace-wide), whatever the tests share."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    await env.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    await ensure_search_attributes(env.client, name)
    return await Client.connect(
        env.client.service_client.config.target_host,
        namespace=name,
        data_converter=pydantic_data_converter,
    )


NO_GROUPS_CONFIG = Path(__file__).with_name("no_groups.yaml")


def make_settings(slack_api_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        slack_bot_token=SLACK_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        decision_key=DECISION_KEY,
        cli_decision_key=CLI_DECISION_KEY,
        slack_api_url=slack_api_url,
        webhook_token="hook-secret",
        api_token="api-secret",
        api_write_token="api-write-secret",
        security_channel=SECURITY_CHANNEL,
        task_queue=f"tq-{uuid.uuid4().hex[:8]}",
        # The built-in defaults but groups (tests/no_groups.yaml): an API without a config of
        # its own asks about each event, as tests of everything but groups expect.
        config=NO_GROUPS_CONFIG,
        # Production runs workflows unsandboxed (powertrip.settings): the tests run them in the
        # SDK's sandbox, so workflow code that reads the clock, randomness or files fails here.
        workflow_sandbox=True,
    )
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real API (api.main.create_app) on a loopback port, and an HTTP client for it."""
    async with ServedApp(create_app(settings)) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=10) as http:
            yield http


STEP_UP_RULES = ["sshd-accepted"]
STEP_UP_CONFIG_YAML = CONFIG_YAML + "step_up_rules: [sshd-accepted]\n"


@asynccontextmanager
async def step_up_api(env: Any, slack_api_url: str, folder: Path) -> AsyncIterator[Settings]:
    """The real API on `http://localhost:<port>` (a secure context for passkeys, its
    POWERTRIP_PUBLIC_URL) with sshd logins needing a step-up, and the worker, against `env`."""
    port = free_port()
    settings = settings_with_config(
        env, slack_api_url, folder, STEP_UP_CONFIG_YAML, public_url=f"http://localhost:{port}"
    )
    async with (
        ServedApp(create_app(settings), port=port),
        running_worker(env.client, settings, make_config(step_up_rules=STEP_UP_RULES)),
    ):
        yield settings


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, config: PowertripConfig | None = None
) -> AsyncIterator[Worker]:
    slack = AsyncWebClient(token=SLACK_TOKEN, base_url=settings.slack_api_url)
    async with running_workers(client, settings, config or make_config(), slack) as worker:
        yield worker


@overload
async def eventually(probe: Callable[[], Awaitable[T | None]], within: float = 10.0) -> T: ...
@overload
async def eventually(probe: Callable[[], T | None], within: float = 10.0) -> T: ...
async def eventually(
    probe: Callable[[], T | None] | Callable[[], Awaitable[T | None]], within: float = 10.0
) -> T:
    """Poll (in real time) until `probe` (plain or async) returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = probe()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


def reminders_posted(record: EventRecord) -> int:
    """Reminders the event's own run posted (not those it handed to the digest)."""
    return sum(
        e.what is TimelineKind.REMINDED and not (e.detail or "").startswith(HANDED_OFF)
        for e in record.timeline
    )


async def state_eventually(
    handle: WorkflowHandle[Any, Any], check: Callable[[EventRecord], bool], within: float = 10.0
) -> EventRecord:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        record = await handle.query(ApprovalWorkflow.state)
        if check(record):
            return record
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"state not reached within {within}s; last: {record}")
        await asyncio.sleep(0.05)


def click(action: Action, user: str, **extra: Any) -> Click:
    """An unsigned click: what anyone who reaches Temporal can send (the workflow rejects it)."""
    return Click(action=action, user=user, at=datetime.now(UTC), **extra)


async def decide(handle: WorkflowHandle[Any, Any], action: Action, user: str, **extra: Any) -> None:
    """Signal a decision as the API or CLI would: signed with the test key for this event."""
    signed = signed_click(DECISION_KEY, handle.id, action, user, **extra)
    await handle.signal(ApprovalWorkflow.decide, signed)


def passkey(n: int, sign_count: int = 0) -> PasskeyCredential:
    """A stand-in passkey (not a real key): for store tests, where no ceremony is checked."""
    return PasskeyCredential(
        credential_id=f"cred-{n}",
        public_key=f"key-{n}",
        sign_count=sign_count,
        transports=["internal"],
        label=f"laptop {n}",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def claim_passkey_link(client: Client, token: str, purpose: LinkPurpose) -> ClaimedLink:
    """Open and claim a link by its token, as the pages do before a ceremony."""
    link = Link.parse(token)
    handle = client.get_workflow_handle(passkey_workflow_id(link.user))
    await handle.execute_update(
        PasskeyUpdate.OPEN_LINK,
        OpenLink(token_hash=link.token_hash, purpose=purpose, challenge="c" * 43),
    )
    claimed: ClaimedLink = await handle.execute_update(
        PasskeyUpdate.CLAIM_LINK,
        ClaimLink(token_hash=link.token_hash, purpose=purpose),
        result_type=ClaimedLink,
    )
    return claimed


async def add_passkey(
    client: Client,
    settings: Settings,
    credential: PasskeyCredential,
    user: str = "U0ALICE",
    replaces: str | None = None,
) -> Enrollment:
    """Register `credential` for `user` through a registration link, as the service does once
    py_webauthn has checked the browser's answer (tests/test_step_up_browser.py runs that)."""
    issued = await issue_registration_link(client, settings, user=user, replaces=replaces)
    token = issued.url.rsplit("/", 1)[1]
    await claim_passkey_link(client, token, LinkPurpose.REGISTRATION)
    enrollment: Enrollment = await client.get_workflow_handle(
        passkey_workflow_id(user)
    ).execute_update(
        PasskeyUpdate.ADD_CREDENTIAL,
        AddCredential(token_hash=Link.parse(token).token_hash, credential=credential),
        result_type=Enrollment,
    )
    return enrollment


def buttons(message: SlackMessage) -> list[str]:
    return [
        element["action_id"]
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def text_of(message: SlackMessage) -> str:
    parts = [message.text]
    for block in message.blocks:
        if "text" in block and isinstance(block["text"], dict):
            parts.append(block["text"]["text"])
        for field in block.get("fields", []):
            parts.append(field["text"])
        for element in block.get("elements", []):
            if isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


async def start(
    env: WorkflowEnvironment, event: SecurityEvent, task_queue: str
) -> WorkflowHandle[ApprovalWorkflow, EventRecord]:
    """Start `event`'s workflow; the handle signals the latest run and awaits the chain's result.

    The handle knows the first run: the time-skipping server answers a result long poll that
    outlasts its timeout with no event, which the SDK reports as "No completion event found"
    for a handle without a run id (seen on loaded 2-core CI), and polls again for one with it."""
    assert await start_approval(env.client, event, task_queue) is ResultStatus.STARTED
    run_id = (await env.client.get_workflow_handle(event.event_id).describe()).run_id
    return WorkflowHandle(
        env.client,
        event.event_id,
        result_run_id=run_id,
        first_execution_run_id=run_id,
        result_type=EventRecord,
    )


def activity_calls(history: WorkflowHistory, name: str) -> int:
    """How many times a history called activity `name`, as an activity task or a local
    activity (its marker)."""
    return len(activity_attempts(history, name))


def scheduled_activities(history: WorkflowHistory) -> list[str]:
    """The activity types a history scheduled as activity tasks, in order (local activities are
    markers, not these: `activity_calls` counts both)."""
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


def activity_inputs(history: WorkflowHistory, name: str) -> list[tuple[int, Any]]:
    """Each activity task `name` a history scheduled, in order: its scheduled event's id (which
    its completion names) and its input, decoded from JSON."""
    return [
        (e.event_id, json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data))
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == name
    ]


def activity_attempts(history: WorkflowHistory, name: str) -> list[int]:
    """The attempt that ended each call of activity `name` in a history, in order: an activity
    task's last start, or a local activity's marker (a marker of an attempt whose retry waits
    on a timer ends no call)."""
    scheduled: set[int] = set()
    attempts: dict[int, int] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            if event.activity_task_scheduled_event_attributes.activity_type.name == name:
                scheduled.add(event.event_id)
                attempts[event.event_id] = 0
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled:
                attempts[started.scheduled_event_id] = started.attempt
        elif event.marker_recorded_event_attributes.marker_name == "core_local_activity":
            [data] = event.marker_recorded_event_attributes.details["data"].payloads
            marker = json.loads(data.data)
            if marker.get("activity_type") == name and not marker.get("backoff"):
                attempts[event.event_id] = marker["attempt"]
    return list(attempts.values())


def posted_to(fake: FakeSlack, channel: str) -> list[SlackMessage]:
    return [m for m in fake.messages.values() if m.channel == channel]


POWERTRIP = Path(sys.executable).parent / "powertrip"


def cli(
    settings: Settings, config: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "POWERTRIP_TEMPORAL_ADDRESS": settings.temporal_address,
        "POWERTRIP_TASK_QUEUE": settings.task_queue,
        "POWERTRIP_SLACK_SIGNING_SECRET": "x",
        "POWERTRIP_WEBHOOK_TOKEN": "hook-secret",
        "POWERTRIP_API_TOKEN": "api-secret",
        "POWERTRIP_CONFIG": str(config),
        **(extra_env or {}),
    }
    return subprocess.run(
        [str(POWERTRIP), "backfill", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip(), result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def run_async(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    # The CLI is a real process; keep the session's event loop (and its servers) running.
    return await asyncio.to_thread(cli, *args, **kwargs)


async def stop(client: Client, workflow_ids: list[str]) -> None:
    """Leave no pending timers behind: on the time-skipping server, a workflow whose worker is
    gone keeps later tests from skipping time."""
    for workflow_id in workflow_ids:
        try:
            await client.get_workflow_handle(workflow_id).terminate("test over")
        except Exception:
            pass


def channel_texts(fake: FakeSlack) -> list[str]:
    return [
        m.text + json.dumps(m.blocks)
        for m in fake.messages.values()
        if m.channel == SECURITY_CHANNEL
    ]


async def exists(env: WorkflowEnvironment, workflow_id: str) -> bool:
    try:
        await env.client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        assert exc.status is RPCStatusCode.NOT_FOUND
        return False
    return True


async def assert_replays(history: WorkflowHistory, workflow: type | None = None) -> None:
    """`history` replays through today's code of `workflow` (default `ApprovalWorkflow`), in the
    SDK's sandbox as the tests' workers run it; fails with the replay's error."""
    replayer = Replayer(
        workflows=[workflow or ApprovalWorkflow], data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure

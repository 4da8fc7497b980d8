"""The fault suite (issue 16): faults injected into the real system, what a user would notice
checked afterwards. tests/faults/README.md has the table of faults and figures."""

from __future__ import annotations

import socket
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from powertrip.config import PowertripConfig
from powertrip.sandbox.fake_slack import FakeSlack, FakeUser
from tests.harness import CONFIG_YAML, make_config


def person(n: int) -> tuple[str, str]:
    """(login name, Slack id) of the `n`th person of a fault test. Each event of a burst is a
    different person's: Powertrip paces DMs to one person at ~1/s, as Slack wants."""
    return f"person{n}", f"U0P{n:05d}"


def people_config(count: int, folder: Path | None = None, **overrides: Any) -> PowertripConfig:
    """The harness config with `count` people (person0…), written to `folder`/powertrip.yaml
    too when given (for a worker subprocess)."""
    users = {**yaml.safe_load(CONFIG_YAML)["users"]}
    users.update({person(n)[0]: {"slack": person(n)[1]} for n in range(count)})
    if folder is not None:
        data = {**yaml.safe_load(CONFIG_YAML), "users": users, **overrides}
        (folder / "powertrip.yaml").write_text(yaml.safe_dump(data))
    return make_config(users=users, **overrides)


def add_people(fake: FakeSlack, count: int) -> None:
    for n in range(count):
        name, user_id = person(n)
        fake.users[user_id] = FakeUser(id=user_id, name=name)


def approval_event(message: Any) -> str | None:
    """The event id an approval message's Approve button carries."""
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == "approve":
                return str(element["value"])
    return None


def dms_per_event(fake: FakeSlack) -> Counter[str]:
    """How many first DMs (messages with an Approve button, in a D… channel) each event got."""
    return Counter(
        event
        for message in list(fake.messages.values())
        if message.channel.startswith("D") and (event := approval_event(message))
    )


async def second_client(client: Client, identity: str = "second-worker") -> Client:
    """Another connection to `client`'s server and namespace, as `identity`: a worker built on
    it in this process is a second worker on the task queue, its tasks carry that identity in
    the histories (`task_identities`), and its metrics go where `client`'s go (same runtime)."""
    config = client.service_client.config
    return await Client.connect(
        config.target_host,
        namespace=client.namespace,
        data_converter=client.data_converter,
        identity=identity,
        runtime=config.runtime,
    )


def worker_identity(pid: int) -> str:
    """The identity Temporal records for a worker process `pid` with the SDK's default."""
    return f"{pid}@{socket.gethostname()}"


async def task_identities(client: Client, workflow_ids: list[str]) -> Counter[str]:
    """Workflow and activity tasks started, per worker identity (`<pid>@<host>`), across the
    histories of `workflow_ids`."""
    by: Counter[str] = Counter()
    for workflow_id in workflow_ids:
        async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                by[event.workflow_task_started_event_attributes.identity] += 1
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                by[event.activity_task_started_event_attributes.identity] += 1
    return by

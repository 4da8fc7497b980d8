"""How many events per second does one Powertrip worker carry through their whole life? Each event:
start, look up who to ask, DM them (fake Slack over HTTP), the click, mark the message decided.
The baseline, in the same run on the same server and worker settings, is Temporal's floor here:
workflows that run one no-op activity and finish.

    .venv/bin/python bench/worker_throughput.py [--events 300] [--rounds 2]

Local dev server with a SQLite file in WAL mode (as `powertrip dev` runs it), one worker with
default options, the fake Slack served by uvicorn in this process. Printed: events/s for the
notify phase (start -> DM posted) and for the full lifecycle, and their ratio to the baseline.
The README's "Scaling" section quotes these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from temporalio.client import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import floor_rate, gather_bounded  # noqa: E402
from powertrip.config import config_from_mapping  # noqa: E402
from powertrip.contracts.approval import Action  # noqa: E402
from powertrip.devserver import dev_server_on_disk  # noqa: E402
from powertrip.models import RawEvent  # noqa: E402
from powertrip.sandbox.fake_slack import FakeSlack, FakeUser, create_fake_slack_app  # noqa: E402
from powertrip.services.starts import ResultStatus, start_approval  # noqa: E402
from powertrip.settings import Settings  # noqa: E402
from powertrip.signing import signed_click  # noqa: E402
from worker import build_worker, slack_client  # noqa: E402
from workflows.approval import ApprovalWorkflow  # noqa: E402

USERS = 200
TOKEN = "xoxb-bench"
DECISION_KEY = "bench-decision-key-" + "0" * 32
CHANNEL = "C0SECURITY"


async def approvals(
    client: Client, fake: FakeSlack, slack_url: str, count: int
) -> tuple[float, float]:
    """(events/s from start to DM, events/s from start to decided and updated)."""
    config = config_from_mapping(
        {
            "security_channel": CHANNEL,
            "security_team": ["U0SEC1"],
            "users": {f"user{n:03d}": {"slack": f"U{n:05d}"} for n in range(USERS)},
            "group_window": "off",  # one question per event, as bench/common.bench_config
        },
        ROOT,
        "bench config",
    )
    rules = config.rule_set()
    settings = Settings(
        temporal_address=client.service_client.config.target_host,
        task_queue=f"bench-{uuid.uuid4().hex[:6]}",
        slack_bot_token=TOKEN,
        slack_api_url=slack_url,
        slack_signing_secret="bench",
        webhook_token="bench",
        api_token="bench",
        decision_key=DECISION_KEY,
        cli_decision_key="bench-cli-decision-key-" + "1" * 32,
    )
    run = uuid.uuid4().hex[:8]
    events = []
    for n in range(count):
        raw = RawEvent(
            source="papertrail",
            provider_id=f"{run}-{n}",
            received_at=datetime.now(UTC),
            host=f"bastion-{n % 20}",
            program="sshd",
            message=f"Accepted publickey for user{n % USERS:03d} from 203.0.113.9 port 5{n} ssh2",
        )
        event = rules.recognise(raw)
        assert event is not None
        events.append(event)
    fake.reset()
    async with build_worker(client, settings, config, slack_client(settings)):
        began = time.perf_counter()
        statuses = await gather_bounded(
            [start_approval(client, e, settings.task_queue) for e in events]
        )
        assert all(s is ResultStatus.STARTED for s in statuses)
        # The fake Slack records messages; it has no event to wait on.
        while sum(m.channel.startswith("D") for m in list(fake.messages.values())) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        notified = time.perf_counter() - began
        handles = [client.get_workflow_handle_for(ApprovalWorkflow.run, e.event_id) for e in events]
        await gather_bounded(
            [
                h.signal(
                    ApprovalWorkflow.decide,
                    signed_click(DECISION_KEY, h.id, Action.APPROVE, f"U{n % USERS:05d}"),
                )
                for n, h in enumerate(handles)
            ]
        )
        await gather_bounded([h.result() for h in handles], 256)
        finished = time.perf_counter() - began
    return count / notified, count / finished


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    fake = FakeSlack(token=TOKEN, channels=[CHANNEL])
    for n in range(USERS):
        fake.users[f"U{n:05d}"] = FakeUser(id=f"U{n:05d}", name=f"user{n:03d}")
    fake.users["U0SEC1"] = FakeUser(id="U0SEC1", name="sec1")
    slack = uvicorn.Server(
        uvicorn.Config(create_fake_slack_app(fake), host="127.0.0.1", port=0, log_level="warning")
    )
    serving = asyncio.create_task(slack.serve())
    while not slack.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
        await asyncio.sleep(0.01)
    slack_url = f"http://127.0.0.1:{slack.servers[0].sockets[0].getsockname()[1]}/api/"
    async with dev_server_on_disk() as env:
        await floor_rate(env.client, 50)  # warm up
        base: list[float] = []
        notify: list[float] = []
        full: list[float] = []
        for _ in range(args.rounds):
            # Interleaved, so a growing database weighs on both sides alike.
            base.append(await floor_rate(env.client, args.events))
            to_dm, to_done = await approvals(env.client, fake, slack_url, args.events)
            notify.append(to_dm)
            full.append(to_done)
    slack.should_exit = True
    await serving
    b = statistics.median(base)
    dm, done = statistics.median(notify), statistics.median(full)
    print(f"one worker, {args.events} events x {args.rounds} rounds (medians), dev server + WAL")
    print(f"  baseline: 1-activity workflows       {b:7.1f} /s")
    print(f"  events:   start -> DM posted          {dm:7.1f} /s   ratio {dm / b:.2f}")
    print(f"  events:   start -> approved, updated  {done:7.1f} /s   ratio {done / b:.2f}")


if __name__ == "__main__":
    asyncio.run(main())

"""How fast does Slack get its answer to a button click? Slack gives up after 3 s; the target is
p99 under 300 ms locally, even while Temporal is slow.

    .venv/bin/python bench/slack_ack.py [--events 200] [--slow-delay 0.5]

On a local dev server with a worker and the fake Slack, it posts real webhooks, waits for the
DMs, then measures `POST /slack/interactions` with correctly signed payloads:
  - baseline:  `GET /healthz` on the same API (the HTTP floor of this machine),
  - approve:   the owner's click on each pending event (memo check + signal),
  - refuse:    someone else's click (memo check + ephemeral reply),
  - slow:      the owner's click through an API whose Temporal connection is delayed by
               `--slow-delay` seconds per packet (Slack still gets its answer; the click lands
               in the background).
Each line prints p50/p99 and the ratio of p99 to the baseline's p99.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.main import create_app
from powertrip.binaries import temporal_cli
from powertrip.sandbox.fake_slack import FakeSlack, FakeUser, create_fake_slack_app
from powertrip.sandbox.interactions import block_action_payload, block_of, signed_request
from powertrip.temporal import SEARCH_ATTRIBUTES
from tests.harness import make_config, make_settings, running_worker, ssh_line
from tests.servers import SECURITY_CHANNEL, SIGNING_SECRET, SLACK_TOKEN, ServedApp
from tests.tcp_delay import DelayProxy


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def timed(calls: list[Callable[[], Awaitable[httpx.Response]]]) -> list[float]:
    samples = []
    for call in calls:  # one at a time: latency, not throughput
        started = time.perf_counter()
        response = await call()
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return samples


async def main(events: int, slow_delay: float) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=["--log-level", "error"],
    )
    fake = FakeSlack(token=SLACK_TOKEN, channels=[SECURITY_CHANNEL])
    fake.users["U0MALLORY"] = FakeUser(id="U0MALLORY", name="mallory")
    # One user per event: DMs to one person are paced at 1 message/s, like Slack wants.
    owners = {f"user{n}": f"U0USER{n}" for n in range(2 * events)}
    for name, user_id in owners.items():
        fake.users[user_id] = FakeUser(id=user_id, name=name)
    config = make_config(users={name: {"slack": uid} for name, uid in owners.items()})
    async with env, ServedApp(create_fake_slack_app(fake)) as slack:
        target = env.client.service_client.config.target_host
        host, port = target.rsplit(":", 1)
        settings = make_settings(f"{slack.url}/api/", temporal_address=target)
        async with (
            DelayProxy(host, int(port), slow_delay) as proxy,
            ServedApp(create_app(settings)) as api,
            ServedApp(
                create_app(settings.model_copy(update={"temporal_address": proxy.address}))
            ) as slow_api,
            running_worker(env.client, settings, config),
            httpx.AsyncClient(timeout=30) as http,
        ):
            ids = []
            for n in range(0, 2 * events, 100):
                batch = [
                    {
                        "id": f"bench-{uuid.uuid4().hex[:12]}",
                        "received_at": "2026-11-27T01:02:03Z",
                        "hostname": "bastion",
                        "program": "sshd",
                        "message": ssh_line(f"user{n + i}"),
                    }
                    for i in range(min(100, 2 * events - n))
                ]
                response = await http.post(
                    f"{api.url}/webhooks/papertrail",
                    json={"events": batch},
                    headers={"Authorization": "Bearer hook-secret"},
                )
                ids += [r["event_id"] for r in response.json()["results"]]
            deadline = time.monotonic() + 120
            while len(fake.messages) < len(ids) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            dms = {
                e["value"]: m
                for m in fake.messages.values()
                for b in m.blocks
                for e in b.get("elements", [])
                if e.get("action_id") == "approve"
            }
            # Let the workflows publish their memos (messages) before clicking.
            await asyncio.sleep(2)
            reply_to = f"{slack.url}/response/bench"

            def click(
                base: str, user: str | None, event_id: str
            ) -> Callable[[], Awaitable[httpx.Response]]:
                dm = dms[event_id]
                user = user or "U" + dm.channel[1:]  # the DM's owner
                payload = block_action_payload(
                    user,
                    "approve",
                    event_id,
                    channel=dm.channel,
                    message_ts=dm.ts,
                    response_url=reply_to,
                    block_id=block_of(dm.blocks, "approve", event_id),
                )

                async def send() -> httpx.Response:
                    body, headers = signed_request(SIGNING_SECRET, payload)
                    return await http.post(
                        f"{base}/slack/interactions", content=body, headers=headers
                    )

                return send

            async def health() -> httpx.Response:
                return await http.get(f"{api.url}/healthz")

            first, second = ids[:events], ids[events:]
            results = {
                "baseline GET /healthz": await timed([health] * events),
                "refuse (wrong user)": await timed([click(api.url, "U0MALLORY", e) for e in first]),
                "approve (owner)": await timed([click(api.url, None, e) for e in first]),
                f"approve, Temporal +{slow_delay:g}s/packet": await timed(
                    [click(slow_api.url, None, e) for e in second[: max(20, events // 5)]]
                ),
            }
            # The slow clicks still land: wait for them before stopping.
            await asyncio.sleep(slow_delay * 8)

    base_p99 = percentiles(results["baseline GET /healthz"])[1]
    print(f"Slack interaction answer times, {events} clicks each (target p99 < 300 ms)")
    print(f"{'':36} {'p50 ms':>8} {'p99 ms':>8} {'p99 / baseline':>15}")
    for name, samples in results.items():
        p50, p99 = percentiles(samples)
        print(f"{name:36} {p50:8.1f} {p99:8.1f} {p99 / base_p99:14.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--slow-delay", type=float, default=0.5)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.slow_delay))

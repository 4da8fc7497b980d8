"""How close does the webhook path come to starting workflows directly? A 1,000-event Papertrail
batch and a 1,000-event CloudWatch batch through the HTTP endpoints, each beside a baseline that
starts the same kind of 1,000 workflows with the Temporal client directly, in the same run, on a
local dev server (SQLite file with WAL, as `powertrip dev` runs it).

    .venv/bin/python bench/ingest.py [--events 1000] [--rounds 2]

The baseline uses the very function the endpoint ends in (`ingest.start_approval`, same
concurrency), so the ratio is the cost of HTTP, parsing and rules. No worker runs: what is
measured is accepting events (the start rate), not notifying people. The API is served by uvicorn
in this process. Targets: HTTP at least 80% of the direct rate, and a 1,000-event batch answered
in under 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.main import create_app  # noqa: E402
from powertrip.config import load_config  # noqa: E402
from powertrip.devserver import dev_server_on_disk  # noqa: E402
from powertrip.models import RawEvent  # noqa: E402
from powertrip.services.starts import start_approval  # noqa: E402
from powertrip.settings import Settings  # noqa: E402
from powertrip.sources.cloudwatch import encode_awslogs  # noqa: E402

TOKEN = "bench-hook-token"


def ssh_message(n: int) -> str:
    return (
        f"Accepted publickey for user{n % 400:03d} from 203.0.113.{n % 250} port {40000 + n} ssh2"
    )


def papertrail_batch(run: str, count: int) -> dict[str, Any]:
    events = [
        {
            "id": f"{run}{n:05d}",
            "received_at": "2026-11-27T01:02:03Z",
            "hostname": f"bastion-{n % 50:02d}",
            "program": "sshd",
            "message": ssh_message(n),
        }
        for n in range(count)
    ]
    return {"events": events, "saved_search": {"id": 1, "name": "ssh"}}


def cloudwatch_batch(run: str, count: int) -> dict[str, Any]:
    events = [
        {
            "id": f"{run}{n:05d}",
            "timestamp": 1795741323000 + n,
            "message": f"Nov 27 01:02:03 bastion-{n % 50:02d} sshd[{n}]: {ssh_message(n)}",
        }
        for n in range(count)
    ]
    return encode_awslogs(
        {
            "messageType": "DATA_MESSAGE",
            "logGroup": "/var/log/secure",
            "logStream": "i-0bench",
            "logEvents": events,
        }
    )


async def direct(env: WorkflowEnvironment, settings: Settings, count: int) -> float:
    """Events/s starting `count` workflows with the client, as the endpoint does after parsing."""
    rules = load_config(None).rule_set()
    run = uuid.uuid4().hex[:8]
    events = []
    for n in range(count):
        raw = RawEvent(
            source="direct",
            provider_id=f"{run}{n:05d}",
            host="bastion",
            program="sshd",
            message=ssh_message(n),
        )
        event = rules.recognise(raw)
        assert event is not None
        events.append(event)
    gate = asyncio.Semaphore(settings.start_concurrency)

    async def one(event: Any) -> None:
        async with gate:
            await start_approval(env.client, event, settings.task_queue)

    started = time.perf_counter()
    await asyncio.gather(*(one(e) for e in events))
    return count / (time.perf_counter() - started)


async def over_http(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], count: int
) -> tuple[float, float]:
    started = time.perf_counter()
    response = await http.post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses.count("started") == count, f"{path}: {set(statuses)}"
    return count / elapsed, elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    async with dev_server_on_disk() as env:
        await run(env, args.events, args.rounds)


async def run(env: WorkflowEnvironment, count: int, rounds: int) -> None:
    settings = Settings(
        temporal_address=env.client.service_client.config.target_host,
        task_queue=f"bench-{uuid.uuid4().hex[:6]}",
        slack_signing_secret="bench",
        webhook_token=TOKEN,
        api_token="bench-api",
        decision_key="bench-decision-key-" + "0" * 32,
        cli_decision_key="bench-cli-decision-key-" + "1" * 32,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    await direct(env, settings, 100)  # warm up connections and the namespace
    rates: dict[str, list[float]] = {"direct": [], "papertrail": [], "cloudwatch": []}
    latency: dict[str, list[float]] = {"papertrail": [], "cloudwatch": []}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        for _ in range(rounds):
            # Interleaved, so drift in the server (a growing database) hits both sides alike.
            rates["direct"].append(await direct(env, settings, count))
            for name, path, make in (
                ("papertrail", "/webhooks/papertrail", papertrail_batch),
                ("cloudwatch", "/webhooks/cloudwatch", cloudwatch_batch),
            ):
                rate, elapsed = await over_http(
                    http, path, make(uuid.uuid4().hex[:8], count), count
                )
                rates[name].append(rate)
                latency[name].append(elapsed)
    server.should_exit = True
    await serving

    baseline = statistics.median(rates["direct"])
    print(f"{count}-event batches, {rounds} rounds, dev server (SQLite file, WAL)")
    print(f"  direct client starts (baseline): {baseline:8.1f} events/s")
    for name in ("papertrail", "cloudwatch"):
        rate = statistics.median(rates[name])
        worst = max(latency[name])
        print(
            f"  {name:>10} webhook over HTTP:    {rate:8.1f} events/s  "
            f"ratio {rate / baseline:5.2f} (target >= 0.80)  "
            f"batch answered in {worst:.2f} s (worst; target < 5 s)"
        )


if __name__ == "__main__":
    asyncio.run(main())

"""How long from a webhook to the DM, and from a click to every message updated?

    .venv/bin/python bench/latency.py [--duration 60] [--rates 20,50] [--clicks 200]

The whole system on loopback (bench/common.py: dev server with a SQLite file in WAL mode, the fake
Slack, the real API, one worker as its own process: `python worker.py`, so the load generator,
API and fake Slack in this process do not starve it of the GIL; `--worker inprocess` to
compare). Open loop: one event per request at each rate for
`--duration` seconds, each login by a different person (Slack paces DMs to one person).
  - webhook → DM: from sending the request to the fake Slack receiving the `chat.postMessage`
    whose Approve button names the event;
  - click → ack: a signed Approve on the DM, until the API answers (what Slack waits for, 3 s);
  - click → updated: the same click until every message of the event has been updated
    (`chat.update`), which the workflow does after recording the decision.
Baseline, same run, same rates: Temporal's floor, a workflow running one no-op activity, from
`start_workflow` to its result. Ratios are p50/p99 over the baseline's p50/p99.
Targets (issue 16): webhook → DM p99 under 250 ms at 20/s; click → updated p99 under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.client import Client
from temporalio.worker import Worker

from bench.common import (
    Baseline,
    Stack,
    floor_rate,
    machine,
    noop,
    p50_p99_ms,
    percentile,
    stack,
    until,
)


async def open_loop(
    rate: float, count: int, send: Callable[[int], Coroutine[Any, Any, None]]
) -> None:
    """Call `send(n)` for n in range(count) at `rate` per second, not waiting for answers."""
    began = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for n in range(count):
        delay = began + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(n)))
    await asyncio.gather(*tasks)


async def floor_latency(client: Client, rate: float, count: int) -> list[float]:
    """Seconds from start to result of one-no-op-activity workflows started at `rate`/s."""
    task_queue = f"floor-{uuid.uuid4().hex[:6]}"
    samples: list[float] = []

    async def one(n: int) -> None:
        began = time.perf_counter()
        await client.execute_workflow(
            Baseline.run, n, id=f"floor-{uuid.uuid4().hex}", task_queue=task_queue
        )
        samples.append(time.perf_counter() - began)

    async with Worker(client, task_queue=task_queue, workflows=[Baseline], activities=[noop]):
        await open_loop(rate, count, one)
    return samples


async def webhook_to_dm(
    system: Stack, rate: float, count: int, first: int
) -> tuple[list[str], list[float]]:
    """Deliver `count` logins at `rate`/s; once their DMs are posted (or 120 s passed): the
    event ids and each DM's latency in seconds."""
    sent: dict[str, float] = {}
    ids: list[str] = []
    answered: list[float] = []

    async def one(n: int) -> None:
        began = time.perf_counter()
        [result] = await system.deliver([system.login(first + n, first + n)])
        answered.append(time.perf_counter() - began)
        assert result["status"] == "started", result
        sent[result["event_id"]] = began
        ids.append(result["event_id"])

    await open_loop(rate, count, one)
    await until(lambda: all(e in system.slack.posted for e in ids), within=120)
    latency = [system.slack.posted[e] - sent[e] for e in ids if e in system.slack.posted]
    missing = len(ids) - len(latency)
    print(f"  webhook answered at {rate:4.0f}/s: {p50_p99_ms(answered)}")
    print(f"  webhook -> DM    at {rate:4.0f}/s: {p50_p99_ms(latency)}  missing {missing}")
    return ids, latency


async def click_to_updated(system: Stack, ids: list[str], rate: float) -> tuple[list[float], ...]:
    """Approve each event's DM at `rate`/s: (click → ack, click → every message updated)."""
    acks: list[float] = []
    updates: list[float] = []

    async def one(n: int) -> None:
        event_id = ids[n]
        began = time.perf_counter()
        response = await system.click(event_id)
        acks.append(time.perf_counter() - began)
        assert response.status_code == 200, response.text
        if await until(lambda: event_id in system.slack.updated, within=60, every=0.01):
            updates.append(system.slack.updated[event_id][-1] - began)

    await open_loop(rate, len(ids), one)
    return acks, updates


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds per rate")
    parser.add_argument("--rates", default="20,50", help="events/s, comma-separated")
    parser.add_argument("--clicks", type=int, default=200, help="clicks measured (at 10/s)")
    parser.add_argument(
        "--worker",
        choices=["subprocess", "inprocess"],
        default="subprocess",
        help="python worker.py beside this process (default), or in this process's event loop",
    )
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    users = int(sum(rates) * args.duration) + 10
    print(f"latency, {args.duration:g} s per rate; {machine()}")
    async with stack(users, worker=args.worker) as system:
        await floor_rate(system.client, 50)  # warm up the server, connections and the worker
        base: dict[float, list[float]] = {}
        dm: dict[float, list[float]] = {}
        first = 0
        clickable: list[str] = []
        for rate in rates:
            count = int(rate * args.duration)
            base[rate] = await floor_latency(system.client, rate, count)
            print(f"  floor (1 no-op)  at {rate:4.0f}/s: {p50_p99_ms(base[rate])}")
            ids, dm[rate] = await webhook_to_dm(system, rate, count, first)
            first += count
            clickable += ids
        # The workflow records its DM (memo) just after posting it; a click is checked against
        # the recorded messages, so give the last ones a moment, as a person would take.
        await asyncio.sleep(2)
        acks, updated = await click_to_updated(system, clickable[: args.clicks], rate=10)
        click_floor = await floor_latency(system.client, 10, len(acks))
    print(f"  click -> ack     at   10/s: {p50_p99_ms(acks)}")
    lost = len(acks) - len(updated)
    print(f"  click -> updated at   10/s: {p50_p99_ms(updated)}  missing {lost}")
    print(f"  floor (1 no-op)  at   10/s: {p50_p99_ms(click_floor)}")
    print("ratios to the floor at the same rate (p50 / p99):")
    for rate in rates:
        print(f"  webhook -> DM    at {rate:4.0f}/s: {ratios(dm[rate], base[rate])}")
    print(f"  click -> updated at   10/s: {ratios(updated, click_floor)}")


def ratios(samples: list[float], base: list[float]) -> str:
    return (
        f"{percentile(samples, 0.5) / percentile(base, 0.5):5.2f} / "
        f"{percentile(samples, 0.99) / percentile(base, 0.99):5.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())

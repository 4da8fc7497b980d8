"""How many events per second does one worker carry through the whole life of an event, through
the front door? Webhook → workflow → who to ask → DM (fake Slack over HTTP) → signed click on the
Slack interactivity URL → decision recorded → every message updated.

    .venv/bin/python bench/throughput.py [--events 300] [--rounds 2]

The whole system on loopback (bench/common.py): dev server with a SQLite file in WAL mode, fake
Slack, the real API, one worker with default options as its own process (`python worker.py`;
`--worker inprocess` runs it in this process's event loop, beside the API and fake Slack).
Baseline, interleaved in the
same run on the same server: Temporal's floor, workflows running one no-op activity. Printed:
events/s for each phase and for the whole life, and the ratio to the floor (issue 16's target for
the whole life: >= 0.5). `bench/worker_throughput.py` measures the same without HTTP (direct
starts and signals), so the difference between the two is the front door's share.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Stack, floor_rate, gather_bounded, machine, ratio, stack, until

BATCH = 100  # events per webhook request
CLICKS_IN_FLIGHT = 32
# The workflow records its DM (memo) one workflow task after posting it, and a click is checked
# against the recorded messages: the click phase starts this long after the last DM, and once
# every DM is recorded (neither counted).
SETTLE = 1.0


async def lifecycle(system: Stack, count: int, first: int) -> tuple[float, float]:
    """(seconds from the first webhook to the last DM, seconds from the first click to the last
    message updated) for `count` new events."""
    apis = len(system.api_urls)
    began = time.perf_counter()
    results = await system.deliver_logins(first, count, BATCH, 4)
    ids = [r["event_id"] for r in results]
    assert all(r["status"] == "started" for r in results), {r["status"] for r in results}
    if not await until(lambda: all(e in system.slack.posted for e in ids), within=600):
        raise RuntimeError("not every event was notified within 600 s")
    notified = max(system.slack.posted[e] for e in ids) - began
    await asyncio.sleep(SETTLE)
    # Not counted, like SETTLE: a click before its DM is recorded would be refused.
    if not await system.recorded(ids):
        raise RuntimeError("not every DM was recorded in its workflow's memo within 120 s")
    clicking = time.perf_counter()
    answers = await gather_bounded(
        (system.click(e, api=n % apis) for n, e in enumerate(ids)), CLICKS_IN_FLIGHT
    )
    assert all(a.status_code == 200 for a in answers)
    if not await until(lambda: all(e in system.slack.updated for e in ids), within=600):
        raise RuntimeError("not every decision updated its messages within 600 s")
    decided = max(system.slack.updated[e][-1] for e in ids) - clicking
    return notified, decided


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--worker",
        choices=["subprocess", "inprocess"],
        default="subprocess",
        help="python worker.py beside this process (default), or in this process's event loop",
    )
    parser.add_argument("--workers", type=int, default=1, help="python worker.py processes")
    parser.add_argument("--apis", type=int, default=1, help="API replicas, used in turn")
    args = parser.parse_args()
    print(
        f"throughput, {args.events} events x {args.rounds} rounds, {args.workers} worker(s)"
        f" ({args.worker}), {args.apis} API replica(s); {machine()}"
    )
    async with stack(
        args.events * args.rounds, worker=args.worker, workers=args.workers, apis=args.apis
    ) as system:
        await floor_rate(system.client, 50)  # warm up
        floor: list[float] = []
        notify: list[float] = []
        decide: list[float] = []
        whole: list[float] = []
        cpu: list[float] = []
        for round in range(args.rounds):
            # Interleaved, so a growing database weighs on both sides alike.
            floor.append(await floor_rate(system.client, args.events))
            used = system.worker.cpu_seconds() if system.worker else 0.0
            notified, decided = await lifecycle(system, args.events, round * args.events)
            if system.worker:
                cpu.append((system.worker.cpu_seconds() - used) / args.events * 1000)
            notify.append(args.events / notified)
            decide.append(args.events / decided)
            whole.append(args.events / (notified + decided))
    base = statistics.median(floor)
    rows = [
        ("floor: 1 no-op activity", base),
        ("webhook -> DM posted", statistics.median(notify)),
        ("signed click -> messages updated", statistics.median(decide)),
        ("whole life (both phases)", statistics.median(whole)),
    ]
    print(f"  {'(medians)':34} {'events/s':>9} {'ratio to floor':>15}")
    for name, rate in rows:
        print(f"  {name:34} {rate:9.1f} {ratio(rate, base):>15}")
    if cpu:
        # What one event costs the worker, whatever else the shared cores are doing.
        print(f"  worker CPU per event (whole life, first worker): {statistics.median(cpu):.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())

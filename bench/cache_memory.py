"""Memory per pending event held in the worker's workflow cache (issue 16: 10,000 pending with
worker RSS under 1 GB; reminders on time only while their events stay cached).

    .venv/bin/python bench/cache_memory.py [--events 2000]

The whole system on loopback (bench/common.py). `--events` logins by different people, each
left pending after its DM (first reminder an hour away), with `python worker.py`'s workflow
cache sized to hold them all: the worker's resident memory after the DMs less before, per
event. Baseline, in the same run and on the same server: as many workflows that only wait on a
timer (`Waiting`, the least a pending workflow can hold), in a worker process of its own with
the same SDK and cache size (`--serve-baseline`, started by this script). The ratio says how
much of a cached event is Powertrip's and how much the SDK's for any workflow.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import gather_bounded, machine, stack, until
from tests.processes import rss_mb

BATCH = 500  # logins per webhook request, as bench/scale.py

SETTLE = 5.0  # seconds after the last workflow task before RSS is read


@workflow.defn(sandboxed=False)
class Waiting:
    """Waits an hour on a timer: a pending workflow with nothing of its own."""

    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(hours=1))


async def serve_baseline(address: str, task_queue: str, cache: int) -> None:
    """The baseline's worker process: `Waiting` on `task_queue`, `cache` runs cached."""
    client = await Client.connect(address)
    async with Worker(
        client, task_queue=task_queue, workflows=[Waiting], max_cached_workflows=cache
    ):
        print("ready", flush=True)
        await asyncio.Event().wait()


async def baseline(client: Client, count: int, cache: int) -> tuple[float, float]:
    """RSS (MiB) of the baseline worker before and after `count` `Waiting` workflows."""
    task_queue = f"cache-baseline-{uuid.uuid4().hex[:6]}"
    address = client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve-baseline",
        f"{address},{task_queue},{cache}",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        await process.stdout.readline()  # "ready"
        await asyncio.sleep(SETTLE)
        before = rss_mb(process.pid)
        # By name: `Waiting.run` here made mypy (2.4) infer `Never` for every
        # `get_workflow_handle_for(ApprovalWorkflow.run, ...)` in the tests checked after it.
        handles = await gather_bounded(
            client.start_workflow("Waiting", id=f"waiting-{n}-{task_queue}", task_queue=task_queue)
            for n in range(count)
        )
        # Cached once its first task has completed: the timer is in its history.
        for _ in range(600):  # 5 minutes at most
            if await _waiting(handles[-1]):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(SETTLE)
        after = rss_mb(process.pid)
        await gather_bounded(h.terminate("bench over") for h in handles)
        return before, after
    finally:
        process.kill()
        await process.wait()


async def _waiting(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the workflow's first task has completed (its timer started)."""
    description = await handle.describe()
    return description.raw_description.workflow_execution_info.history_length >= 4


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--serve-baseline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        address, task_queue, cache = args.serve_baseline.split(",")
        await serve_baseline(address, task_queue, int(cache))
        return
    cache = args.events + 200  # the digest, its collectors and some room
    print(f"cache memory, {args.events} pending; {machine()}")
    async with stack(
        args.events,
        worker="subprocess",
        config={"renotify_after": "1h"},
        worker_env={"POWERTRIP_MAX_CACHED_WORKFLOWS": str(cache)},
    ) as system:
        assert system.worker is not None
        await asyncio.sleep(SETTLE)
        before = system.worker.rss_mb()
        results = await system.deliver_logins(0, args.events, BATCH, 2)
        started = sum(1 for r in results if r["status"] == "started")
        asked = await until(lambda: len(system.slack.posted) >= started, within=900)
        await asyncio.sleep(SETTLE)
        after = system.worker.rss_mb()
        base_before, base_after = await baseline(system.client, started, cache)
    per_event = (after - before) * 1024 / started
    per_waiting = (base_after - base_before) * 1024 / started
    print(
        f"  Powertrip: {started} pending{'' if asked else ' (not all asked)'}, worker RSS"
        f" {before:6.0f} -> {after:6.0f} MiB: {per_event:6.1f} KiB per cached event"
    )
    print(
        f"  baseline:  {started} workflows waiting on a timer, RSS {base_before:6.0f} ->"
        f" {base_after:6.0f} MiB: {per_waiting:6.1f} KiB per cached workflow"
    )
    print(f"  ratio to the baseline {per_event / per_waiting:5.2f}")
    print(
        f"  10,000 cached would take about {before + 10_000 * per_event / 1024:6.0f} MiB"
        f" (baseline {base_before + 10_000 * per_waiting / 1024:6.0f} MiB)"
    )


if __name__ == "__main__":
    asyncio.run(main())

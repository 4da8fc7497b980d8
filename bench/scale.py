"""N approvals pending at once: are they all asked, how fast, at what memory, and do their
reminders come on time without flooding the security channel?

    .venv/bin/python bench/scale.py [--events 500] [--renotify 20] [--duration 60]
    .venv/bin/python bench/scale.py --events 10000 --renotify 600 --duration 600   # the real run

The whole system on loopback (bench/common.py), the worker as its own process (`python worker.py`)
so its resident memory is its own, with its Temporal metrics on an ephemeral port. Phases:
  1. floor: Temporal's one-no-op-activity workflows/s, same server, before the load;
  2. ingest: `--events` logins by different people, 500 per webhook request, 2 in flight;
  3. notify: until every DM is posted: DMs/s and its ratio to the floor;
  4. remind: every event's first reminder falls due `--renotify` s after its DM; wait until it
     has passed for the last one plus up to `--duration` s, then ask 100 sampled events when
     their reminder reached Slack (lateness = reminded - (notified + renotify); a reminder
     handed to the digest reached it when the digest listing it was posted, read from the
     digest workflow's histories) and count the security-channel messages (Slack allows ~1 per
     second per channel). The hand-off's own lateness (the timer's) is printed beside it.
Worker RSS is sampled every 0.5 s (peak printed). "Where the time goes" is read from the
worker's own metrics: mean schedule-to-start (waiting for a worker slot) and execution time of
workflow tasks and of each activity type; the workflow cache (peak `sticky_cache_size`, sampled
every 2 s with the slots in use; hits, misses, forced evictions: a miss replays the run's whole
history); replays; and the reminder digest workflow (its runs and the current run's history).
`--worker-env KEY=VALUE` passes settings to the worker (e.g. `POWERTRIP_MAX_CACHED_WORKFLOWS`).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import EventType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    Stack,
    floor_rate,
    machine,
    percentile,
    ratio,
    stack,
    until,
)
from powertrip.contracts.approval import RECORD_MEMO, EventRecord, TimelineKind
from powertrip.contracts.reminders import HANDED_OFF, reminder_digest_id
from tests.harness import activity_inputs
from tests.servers import free_port

BATCH = 500
SAMPLE = 100


async def sample_rss(system: Stack, peaks: list[float], stop: asyncio.Event) -> None:
    assert system.worker is not None
    while not stop.is_set():
        peaks.append(system.worker.rss_mb())
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


async def metric_values(metrics: str) -> dict[str, float]:
    """The worker's counters and gauges (summed over labels), by name without `temporal_`."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{metrics}/metrics")).text
    values: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        if family.type not in ("counter", "gauge"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            key = sample.name.removeprefix("temporal_")
            if "worker_type" in sample.labels:
                key += f"[{sample.labels['worker_type']}]"
            values[key] += sample.value
    return values


async def sample_gauges(metrics: str, peaks: dict[str, float], stop: asyncio.Event) -> None:
    """Peak workflow cache size and task slots in use, every 2 s."""
    while not stop.is_set():
        try:
            for key, value in (await metric_values(metrics)).items():
                if key.startswith(("sticky_cache_size", "worker_task_slots_used")):
                    peaks[key] = max(peaks.get(key, 0.0), value)
        except httpx.HTTPError:
            pass
        try:
            await asyncio.wait_for(stop.wait(), 2)
        except TimeoutError:
            pass


async def digest_runs(system: Stack) -> str:
    """The reminder digest workflow: how many runs (continue-as-new), the current history."""
    digest_id = reminder_digest_id(system.settings.task_queue)
    runs = [w async for w in system.client.list_workflows(f"WorkflowId = '{digest_id}'")]
    described = await system.client.get_workflow_handle(digest_id).describe()
    info = described.raw_description.workflow_execution_info
    return (
        f"{len(runs)} runs; current run {info.history_length} history events"
        f" ({info.history_size_bytes / 1e6:.1f} MB)"
    )


async def digest_posts(system: Stack, times: Counter[str] | None = None) -> dict[str, datetime]:
    """When each event was first listed in a posted digest: the completion of the digest
    workflow's `post_digest` activity whose input lists it, over every run of the digest.
    `times` gets how many posted digests listed each event."""
    digest_id = reminder_digest_id(system.settings.task_queue)
    listed: dict[str, datetime] = {}
    async for execution in system.client.list_workflows(f"WorkflowId = '{digest_id}'"):
        handle = system.client.get_workflow_handle(digest_id, run_id=execution.run_id)
        history = await handle.fetch_history()
        lines = {
            scheduled: [n["event"]["event_id"] for n in request["lines"]]
            for scheduled, request in activity_inputs(history, "post_digest")
        }
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                done = event.activity_task_completed_event_attributes
                at = event.event_time.ToDatetime(tzinfo=UTC)
                for event_id in lines.get(done.scheduled_event_id, []):
                    listed[event_id] = min(at, listed.get(event_id, at))
                    if times is not None:
                        times[event_id] += 1
    return listed


async def lateness(
    system: Stack,
    ids: list[str],
    renotify: float,
    how: dict[str, int] | None = None,
    handed: list[float] | None = None,
    times: Counter[str] | None = None,
) -> tuple[list[float], int]:
    """Seconds each sampled event's first reminder reached Slack after it was due; how many had
    none. `how` counts the reminders by how they went: in a digest, or posted on their own;
    `handed` gets how late each hand-off to the digest was (its timer's lateness); `times` how
    many posted digests listed each event, every event, not only those sampled."""
    late: list[float] = []
    none = 0
    if how is not None:
        how.clear()
    if handed is not None:
        handed.clear()
    if times is not None:
        times.clear()
    listed = await digest_posts(system, times)
    for event_id in ids:
        # From the memo, as the API reads it: a query would wait in the worker's queue.
        described = await system.client.get_workflow_handle(event_id).describe()
        record = await described.memo_value(RECORD_MEMO, type_hint=EventRecord)
        notified = next((e.at for e in record.timeline if e.what is TimelineKind.NOTIFIED), None)
        reminded_entries = [e for e in record.timeline if e.what is TimelineKind.REMINDED]
        if notified is None or not reminded_entries:
            none += 1
            continue
        due = notified + timedelta(seconds=renotify)
        first = reminded_entries[0]
        detail = first.detail or ""
        reminded: datetime | None = first.at
        digested = "in the digest" in detail
        if detail.startswith(HANDED_OFF):
            if handed is not None:
                handed.append((first.at - due).total_seconds())
            own = next(
                (e.at for e in reminded_entries if not (e.detail or "").startswith(HANDED_OFF)),
                None,
            )
            digested = event_id in listed
            reminded = listed.get(event_id, own)
        if reminded is None:
            none += 1
            continue
        if how is not None:
            how["in a digest" if digested else "own post"] += 1
        late.append((reminded - due).total_seconds())
    return late, none


async def where_time_goes(metrics: str) -> list[str]:
    """Mean schedule-to-start and execution latencies from the worker's Prometheus endpoint."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{metrics}/metrics")).text
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        if not family.name.endswith("latency_seconds") and not family.name.endswith("latency"):
            continue
        for sample in family.samples:
            key = family.name.removeprefix("temporal_")
            if "activity_type" in sample.labels:
                key += f"[{sample.labels['activity_type']}]"
            if sample.name.endswith("_sum"):
                sums[key] += sample.value
            elif sample.name.endswith("_count"):
                counts[key] += sample.value
    return [
        f"    {key:70} mean {sums[key] / counts[key] * 1000:9.1f} ms  x{int(counts[key])}"
        for key in sorted(sums)
        if counts.get(key)
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--renotify", type=float, default=20, help="seconds to the 1st reminder")
    parser.add_argument("--duration", type=float, default=60, help="max wait for reminders, s")
    parser.add_argument(
        "--worker-env", action="append", default=[], metavar="KEY=VALUE", help="worker setting"
    )
    args = parser.parse_args()
    worker_env = dict(item.split("=", 1) for item in args.worker_env)
    metrics = f"127.0.0.1:{free_port()}"
    print(f"scale, {args.events} pending, first reminder after {args.renotify:g} s; {machine()}")
    if worker_env:
        print(f"  worker environment: {worker_env}")
    async with stack(
        args.events,
        worker="subprocess",
        config={"renotify_after": f"{args.renotify:g}s"},
        metrics_bind=metrics,
        worker_env=worker_env,
    ) as system:
        assert system.worker is not None
        floor = await floor_rate(system.client, min(args.events, 500))
        print(f"  floor: 1 no-op activity workflows        {floor:8.1f} /s")
        rss: list[float] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(system, rss, stop))
        gauges: dict[str, float] = {}
        gauge_sampler = asyncio.create_task(sample_gauges(metrics, gauges, stop))
        began = time.perf_counter()
        results = await system.deliver_logins(0, args.events, BATCH, 2)
        ingested = time.perf_counter() - began
        ids = [r["event_id"] for r in results if r["status"] == "started"]
        print(f"  ingest: {len(ids)} started in {ingested:6.1f} s    {len(ids) / ingested:8.1f} /s")
        all_asked = await until(
            lambda: len(system.slack.posted) >= len(ids),
            within=max(120, args.events / 5),
            every=0.5,
        )
        last_dm = max(system.slack.posted.values())
        notify_rate = len(system.slack.posted) / (last_dm - began)
        print(
            f"  notify: {len(system.slack.posted)}/{len(ids)} DMs"
            f"{'' if all_asked else ' (gave up)'}"
            f", last {last_dm - began:6.1f} s after the first webhook  {notify_rate:8.1f} /s"
            f"   ratio to floor {ratio(notify_rate, floor)}"
        )
        rss_notify = max(rss)
        channel_before = len(system.slack.channel_posts)
        # Every first reminder is due by last_dm + renotify; give them `duration` s more.
        due = last_dm + args.renotify
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        sample = random.Random(16).sample(ids, min(SAMPLE, len(ids)))
        deadline = time.perf_counter() + args.duration
        how: dict[str, int] = defaultdict(int)
        handed: list[float] = []
        times: Counter[str] = Counter()
        while True:
            late, missing = await lateness(system, sample, args.renotify, how, handed, times)
            if not missing or time.perf_counter() > deadline:
                break
            await asyncio.sleep(5)
        waited = time.perf_counter() - due
        stop.set()
        await sampler
        await gauge_sampler
        posts = system.slack.channel_posts[channel_before:]
        per_second: dict[int, int] = defaultdict(int)
        for at in posts:
            per_second[int(at)] += 1
        span = (posts[-1] - posts[0]) if len(posts) > 1 else 0.0
        print(
            f"  remind: {SAMPLE} sampled, {missing} without a reminder {waited:5.1f} s after the"
            f" last was due; lateness p50 {percentile(late, 0.5):5.1f} s"
            f" p99 {percentile(late, 0.99):5.1f} s max {max(late, default=float('nan')):5.1f} s"
            f" ({', '.join(f'{n} {k}' for k, n in sorted(how.items()))})"
        )
        if handed:
            print(
                f"  handed to the digest: {len(handed)}; the hand-off's lateness"
                f" p50 {percentile(handed, 0.5):5.1f} s p99 {percentile(handed, 0.99):5.1f} s"
            )
        # Each event's first reminder only, as long as the run ends before a second is due.
        twice = sum(1 for n in times.values() if n > 1)
        print(f"  digests so far list {len(times)} events, {twice} of them more than once")
        print(
            f"  security channel: {len(posts)} messages over {span:5.1f} s,"
            f" busiest second {max(per_second.values(), default=0)}"
        )
        print(f"  worker RSS: peak {max(rss):6.0f} MiB (notify phase {rss_notify:6.0f} MiB)")
        print(f"  reminder digest workflow: {await digest_runs(system)}")
        print("  where the time goes (worker metrics, whole run):")
        print("\n".join(await where_time_goes(metrics)))
        counters = await metric_values(metrics)
        print("  workflow cache and tasks (worker metrics):")
        peaks = {f"peak {k}": v for k, v in gauges.items()}
        for key, value in sorted({**counters, **peaks}.items()):
            if any(
                word in key
                for word in ("sticky_cache", "slots_used", "failed", "timeout", "poll_succeed")
            ):
                print(f"    {key:70} {value:12.0f}")


if __name__ == "__main__":
    asyncio.run(main())

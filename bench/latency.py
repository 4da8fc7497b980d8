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

When the system falls behind the offered rate the load keeps its schedule: at most `IN_FLIGHT`
requests are on the wire, the others wait their turn in the bench, and every latency runs from
the request's scheduled send, its wait included. A request not answered within `DEADLINE` of
that, or answered with an error, is counted and printed under its phase ("requests: … failed …,
timed out …"), never dropped silently: n + failed + timed out (+ a DM's "missing") = scheduled.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
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

IN_FLIGHT = 100
"""Requests the load generator has on the wire at once: httpx's default pool size, so the
figures compare with the runs before this bound. Past it a request waits for its turn in the
bench (FIFO), not in httpx: httpcore's pool rescans every queued request against every
connection each time one is added or finishes, O(queued x connections) in the event loop that
also serves the API and the fake Slack, and raised `PoolTimeout` after 120 s queued (a 60 s run at
50/s). The wait is part of the request's latency, as a sender's would be."""

DEADLINE = 120.0
"""Seconds from a request's scheduled send, its wait for a turn included, until it counts as
timed out (the client's own timeout before this bound)."""


class Refused(Exception):
    """The system answered, but not as asked: a login not started, a click not answered 200."""


@dataclass
class Load:
    """How one open-loop phase's requests ended, and the bench's own queue for the wire.

    Every scheduled request ends once: ok (its latency is in the phase's samples), failed (by
    exception type; the first message of each kept) or timed out (`DEADLINE` after its scheduled
    send; `unsent` of those never got on the wire). `waited`: requests that found `IN_FLIGHT`
    already on the wire; `most`: the most on the wire at once."""

    scheduled: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)
    timed_out: int = 0
    unsent: int = 0
    waited: int = 0
    most: int = 0
    on_wire: int = 0
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(IN_FLIGHT))

    @asynccontextmanager
    async def wire(self) -> AsyncIterator[None]:
        """One request's time on the wire: its turn (FIFO, at most `IN_FLIGHT` at once), within
        `DEADLINE` of entering (TimeoutError, counted in `unsent` if it never got a turn)."""
        sent = False
        try:
            async with asyncio.timeout(DEADLINE):
                if self.gate.locked():
                    self.waited += 1
                async with self.gate:
                    sent = True
                    self.on_wire += 1
                    self.most = max(self.most, self.on_wire)
                    try:
                        yield
                    finally:
                        self.on_wire -= 1
        except TimeoutError:
            if not sent:
                self.unsent += 1
            raise

    def fail(self, exc: Exception) -> None:
        """Count `exc`, what a request ended with: a timeout or a failure of its kind."""
        if isinstance(exc, TimeoutError | httpx.TimeoutException):
            self.timed_out += 1
        else:
            name = type(exc).__name__
            self.failed[name] += 1
            if isinstance(exc, httpx.HTTPStatusError):  # the body says why (e.g. a 503's detail)
                why = f"{exc.response.status_code} {exc.response.text}"
            else:
                why = str(exc)
            self.first.setdefault(name, " ".join(why.split())[:200])

    def summary(self) -> str:
        """`requests: … ok, failed …, timed out … of …`, then the wire (if the phase used it):
        `(… never sent); at most … on the wire, … waited for a turn`, and a line per kind of
        failure with its first message."""
        failed = sum(self.failed.values())
        ok = self.scheduled - failed - self.timed_out
        line = f"    requests: {ok} ok, failed {failed}, timed out {self.timed_out}"
        if self.most or self.unsent:
            line += (
                f" ({self.unsent} never sent) of {self.scheduled}; "
                f"at most {self.most} on the wire, {self.waited} waited for a turn"
            )
        else:
            line += f" of {self.scheduled}"
        for name, count in self.failed.most_common():
            line += f"\n      {name} x{count}, first: {self.first[name]}"
        return line


async def open_loop(
    rate: float, count: int, send: Callable[[int], Coroutine[Any, Any, None]], load: Load
) -> Load:
    """Call `send(n)` for n in range(count) at `rate` per second, not waiting for answers and
    never holding the schedule back; once all are done, `load` (`send` puts its requests on the
    wire through `load.wire()`), with every exception `send` raised counted in it, not raised."""
    load.scheduled += count
    began = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []

    async def counted(n: int) -> None:
        try:
            await send(n)
        except Exception as exc:  # every failure is counted and printed, none dropped silently
            load.fail(exc)

    for n in range(count):
        delay = began + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(counted(n)))
    await asyncio.gather(*tasks)
    return load


async def floor_latency(client: Client, rate: float, count: int) -> tuple[list[float], Load]:
    """Seconds from start to result of one-no-op-activity workflows started at `rate`/s, and
    how the starts ended (Temporal's client, not the bench's wire: no turn, no deadline)."""
    task_queue = f"floor-{uuid.uuid4().hex[:6]}"
    samples: list[float] = []

    async def one(n: int) -> None:
        began = time.perf_counter()
        await client.execute_workflow(
            Baseline.run, n, id=f"floor-{uuid.uuid4().hex}", task_queue=task_queue
        )
        samples.append(time.perf_counter() - began)

    async with Worker(client, task_queue=task_queue, workflows=[Baseline], activities=[noop]):
        load = await open_loop(rate, count, one, Load())
    return samples, load


async def webhook_to_dm(
    system: Stack, rate: float, count: int, first: int
) -> tuple[list[str], list[float]]:
    """Deliver `count` logins at `rate`/s; once their DMs are posted (or 120 s passed): the
    ids of the events started and each DM's latency in seconds (from the scheduled send)."""
    sent: dict[str, float] = {}
    ids: list[str] = []
    answered: list[float] = []
    load = Load()

    async def one(n: int) -> None:
        began = time.perf_counter()
        async with load.wire():
            [result] = await system.deliver([system.login(first + n, first + n)])
        if result["status"] != "started":
            raise Refused(f"login {first + n}: {result}")
        answered.append(time.perf_counter() - began)
        sent[result["event_id"]] = began
        ids.append(result["event_id"])

    await open_loop(rate, count, one, load)
    await until(lambda: all(e in system.slack.posted for e in ids), within=120)
    latency = [system.slack.posted[e] - sent[e] for e in ids if e in system.slack.posted]
    missing = len(ids) - len(latency)
    print(f"  webhook answered at {rate:4.0f}/s: {p50_p99_ms(answered)}")
    print(f"  webhook -> DM    at {rate:4.0f}/s: {p50_p99_ms(latency)}  missing {missing}")
    print(load.summary())
    return ids, latency


async def click_to_updated(
    system: Stack, ids: list[str], rate: float
) -> tuple[list[float], list[float], Load]:
    """Approve each event's DM at `rate`/s: (click → ack, click → every message updated, how
    the clicks ended). An ack other than 200 is a failure; an ack not followed by every
    message updated within 60 s is missing from the second list only."""
    acks: list[float] = []
    updates: list[float] = []
    load = Load()

    async def one(n: int) -> None:
        event_id = ids[n]
        began = time.perf_counter()
        async with load.wire():
            response = await system.click(event_id)
        if response.status_code != 200:
            raise Refused(f"click on {event_id}: {response.status_code} {response.text}")
        acks.append(time.perf_counter() - began)
        if await until(lambda: event_id in system.slack.updated, within=60, every=0.01):
            updates.append(system.slack.updated[event_id][-1] - began)

    await open_loop(rate, len(ids), one, load)
    return acks, updates, load


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
    async with stack(users, worker=args.worker) as shared:
        # The bench's own client: as many connections as `IN_FLIGHT` lets on the wire, so no
        # request ever queues inside httpx (no pool timeout); `DEADLINE` bounds each request.
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(None)) as http:
            system = dataclasses.replace(shared, http=http)
            await measure(system, rates, args.duration, args.clicks)


async def measure(system: Stack, rates: list[float], duration: float, clicks: int) -> None:
    """Each rate's floor and webhook → DM, then `clicks` clicks at 10/s and their floor; prints
    the figures and their ratios to the floor."""
    await floor_rate(system.client, 50)  # warm up the server, connections and the worker
    base: dict[float, list[float]] = {}
    dm: dict[float, list[float]] = {}
    first = 0
    clickable: list[str] = []
    for rate in rates:
        count = int(rate * duration)
        base[rate], floor_load = await floor_latency(system.client, rate, count)
        print(f"  floor (1 no-op)  at {rate:4.0f}/s: {p50_p99_ms(base[rate])}")
        print(floor_load.summary())
        ids, dm[rate] = await webhook_to_dm(system, rate, count, first)
        first += count
        clickable += ids
    # Only events whose DM was posted can be clicked; a click is checked against the messages
    # the workflow recorded (memo), which it does a workflow task after posting, seconds later
    # under load: wait for that, uncounted, as a person would take a moment.
    to_click = [e for e in clickable if e in system.slack.posted][:clicks]
    recorded = await system.recorded(to_click)
    if len(to_click) < clicks or not recorded:
        print(
            f"  clicking {len(to_click)} of the {clicks} asked (DMs posted: "
            f"{len(system.slack.posted)}); every DM recorded before clicking: {recorded}"
        )
    acks, updated, click_load = await click_to_updated(system, to_click, rate=10)
    click_floor, click_floor_load = await floor_latency(system.client, 10, len(acks))
    print(f"  click -> ack     at   10/s: {p50_p99_ms(acks)}")
    lost = len(acks) - len(updated)
    print(f"  click -> updated at   10/s: {p50_p99_ms(updated)}  missing {lost}")
    print(click_load.summary())
    print(f"  floor (1 no-op)  at   10/s: {p50_p99_ms(click_floor)}")
    print(click_floor_load.summary())
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

"""Is parsing ever the bottleneck of a backfill? 100,000 syslog lines of which 5,000 are logins,
through `powertrip.services.backfill` (syslog framing, rules, `recognise.process` starting the
workflows) on a
local dev server (SQLite file with WAL, as `powertrip dev` runs it), beside two baselines measured
in the same run:

- rules alone: the same lines read, framed and recognised, no Temporal (target >= 50,000 lines/s);
- direct starts: the same 5,000 events started with `ingest.start_approval` at the same
  concurrency, nothing else (the Temporal start rate that bounds any backfill).

    .venv/bin/python bench/backfill.py [--lines 100000] [--logins 5000]

No worker runs: what is measured is accepting events, not notifying people.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from powertrip.config import load_config  # noqa: E402
from powertrip.devserver import dev_server_on_disk  # noqa: E402
from powertrip.services.backfill import Backfill, aiter_chunks  # noqa: E402
from powertrip.services.starts import start_approval  # noqa: E402
from powertrip.sources.files import chunked, records  # noqa: E402

CONCURRENCY = 64
NOISE = [
    "Connection closed by {ip} port {port} [preauth]",
    "pam_unix(sshd:session): session closed for user user{u}",
    "Failed password for invalid user admin from {ip} port {port} ssh2",
    "Received disconnect from {ip} port {port}:11: disconnected by user",
]
OTHER = [
    "CRON[{pid}]: (root) CMD (run-parts /etc/cron.hourly)",
    "systemd[1]: Started Session {pid}.",
]


def make_lines(run: str, total: int, logins: int) -> list[str]:
    start = datetime.now(UTC) - timedelta(hours=1)
    every = total // logins
    lines = []
    for n in range(total):
        stamp = (start + timedelta(milliseconds=30 * n)).strftime("%b %d %H:%M:%S")
        host = f"{run}-{n % 40:02d}"
        ip, port, pid = f"203.0.113.{n % 250}", 20000 + n % 40000, 1000 + n
        if n % every == 0:
            message = (
                f"sshd[{pid}]: Accepted publickey for user{n % 300} from {ip} port {port} ssh2"
            )
        elif n % 3:
            message = f"sshd[{pid}]: " + NOISE[n % len(NOISE)].format(ip=ip, port=port, u=n % 300)
        else:
            message = OTHER[n % len(OTHER)].format(pid=pid)
        lines.append(f"{stamp} {host} {message}")
    return lines


def rules_alone(lines: list[str]) -> tuple[float, int]:
    rules = load_config(None).rule_set()
    began = time.perf_counter()
    matched = 0
    for located in records(lines):
        raw = located.item.raw
        if raw is not None and rules.recognise(raw) is not None:
            matched += 1
    return time.perf_counter() - began, matched


async def whole_backfill(env: WorkflowEnvironment, lines: list[str]) -> tuple[float, int]:
    rules = load_config(None).rule_set()
    runner = Backfill(env.client, rules, "bench-backfill", CONCURRENCY)
    began = time.perf_counter()
    report = await runner.run(aiter_chunks(chunked(records(lines))))
    elapsed = time.perf_counter() - began
    assert report.invalid == 0, report.invalid_records[:3]
    return elapsed, report.started


async def direct_starts(env: WorkflowEnvironment, lines: list[str]) -> tuple[float, int]:
    rules = load_config(None).rule_set()
    events = []
    for located in records(lines):
        if located.item.raw and (event := rules.recognise(located.item.raw)):
            events.append(event)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(event: object) -> None:
        async with gate:
            await start_approval(env.client, event, "bench-direct")  # type: ignore[arg-type]

    began = time.perf_counter()
    await asyncio.gather(*(one(e) for e in events))
    return time.perf_counter() - began, len(events)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--logins", type=int, default=5_000)
    args = parser.parse_args()

    parse_s, matched = rules_alone(make_lines("warm", args.lines, args.logins))
    parse_s, matched = rules_alone(make_lines("parse", args.lines, args.logins))
    parse_rate = args.lines / parse_s
    print(f"rules alone:     {args.lines:,} lines in {parse_s:6.2f}s = {parse_rate:9,.0f} lines/s")
    print(f"                 ({matched:,} logins recognised; target >= 50,000 lines/s)")

    async with dev_server_on_disk() as env:
        direct_s, direct_n = await direct_starts(
            env, make_lines(f"d{uuid.uuid4().hex[:6]}", args.lines, args.logins)
        )
        lines = make_lines(f"b{uuid.uuid4().hex[:6]}", args.lines, args.logins)
        backfill_s, started = await whole_backfill(env, lines)
    direct_rate = direct_n / direct_s
    line_rate = args.lines / backfill_s
    start_rate = started / backfill_s
    print(f"direct starts:   {direct_n:,} workflows in {direct_s:6.2f}s = {direct_rate:7,.0f}/s")
    print(
        f"whole backfill:  {args.lines:,} lines in {backfill_s:6.2f}s = {line_rate:9,.0f} lines/s"
        f" ({started:,} started = {start_rate:,.0f}/s)"
    )
    print(f"backfill lines/s vs rules alone:       {line_rate / parse_rate:6.1%}")
    print(f"backfill starts/s vs direct starts/s:  {start_rate / direct_rate:6.1%}")
    print(
        "parsing is "
        + ("not " if parse_s < backfill_s / 3 else "")
        + f"the bottleneck: it would take {parse_s:.2f}s of the backfill's {backfill_s:.2f}s"
    )


if __name__ == "__main__":
    asyncio.run(main())

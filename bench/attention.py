"""How many Slack messages does a day of ordinary privileged work cost people? Issue 13 §4.

    .venv/bin/python bench/attention.py                      # short: 10 people, 1 bot, x60
    .venv/bin/python bench/attention.py --people 50 --bots 3 --sessions 3   # the issue's day

(The short run replays 385 events twice: 1-2.5 min per phase, plus a few seconds each to start
a stack, measured under loads of 1-21 on 2 shared cores.)

A synthetic day (seeded, deterministic: `make_day`) is replayed through the real stack
(bench/common.py: dev server, the real API over HTTP webhooks, `python worker.py`, the fake Slack
over loopback HTTP): people mapped in the directory (`users:`) log in over ssh, run sudo sessions
of 5-40 commands on a host (a burst), now and then `su`; deploy bots (`bots:`, asked in the
security channel) log in and run a short sudo burst per deploy; one person has a planned
maintenance window on the database hosts, covered by an expectation created through the API
(`POST /v1/expectations`) before the window opens. Everyone answers: each person presses
*Approve* on every question in their DM, the security team *Approve on behalf* on every question
in the channel, a "think time" (20 s - 4 min of day time, seeded) after it appeared, always
before the first reminder (`renotify_after` stays at its 15 min default and is not reached).
With `--expect-same 0.3`, 30 % of the DM questions (seeded) are answered with *Approve, and
expect the same from me here for 1 h* instead (grouped phase only; that hour is scaled too: the
bench revokes it through the API after 3600/speed seconds).

Time: the product groups by *arrival* (a group's window is counted on the worker's clock from the
group's first event), and an expectation covers the events that *happened* within its span (from
its creation, less a 5-minute clock-skew allowance, until its end) and are asked about before its
end. So the replay dates events as a live source would: each is stamped with the real time at
which the replay delivers it (the day's own date and time of day are not sent), and the day is
compressed consistently on that one clock: within a person's session every gap (between
commands, think times) is divided by `--speed`, and so is the grouping window (`group_window:
10m` becomes 600/speed seconds) and the expectation's duration; the hours between one person's
sessions are skipped (the next session starts once the previous one's events are all decided, as
they are hours apart on the day). People work in parallel. The maintenance window's expectation
is created before its first event is delivered, and an "expect the same" one when its button is
pressed, so each covers what comes after it, as live; neither covers what happened before it.
(Until expectations bound to when an event happened, the bench stamped events with their time
on a past day; with that binding, no expectation covered any of them.) Events are delivered one
per webhook request. Not scaled, because they are the product's or Slack's real-time constants:
the 3 s debounce of a group's in-place edits and the expectation message's one edit a minute (so
the replay shows fewer `chat.update` than the day would: new posts are unaffected), Slack's DM
pacing (~1 per second per person), the stack's own latency, which at x60 is a minute of day time
per second: a loaded machine makes the first DM of a burst later, and can make a join miss the
scaled window ("window or full" below); the 5-minute clock skew (5 hours of day time at x60: it
would let an expectation cover events from before it, but those were asked about already, and
the product looks for an expectation before the first question only); and the tolerance within
which the product takes two lines for one action ("One event per action": 5 s for a line with
no source port, a sudo command or an `su`; 2 min for a login, which names its port), hence every
command line names something of its own and every login its own port (`make_day`; the tests
check that no two lines of a day are one action, whatever their times).

Baseline, measured in the same run: the same day replayed the same way with `group_window: off`
and no expectation created (the maintenance window's events are asked like any other): one
question per event, which is what Powertrip did before groups. The two phases alternate
(`--rounds`), each on its own fresh stack.

Counted, from the fake Slack's Web API calls: `chat.postMessage` is a message a human sees (a new
notification); `chat.update` edits one in place (no new notification) and is printed apart.
Mapped users' figures are their DMs; the security channel's are every post there (bots'
questions, the expectation's message, reminders and digests if any). Printed per event and per
approved event; issue 13's target: <= 1.1 new DMs per approved event for mapped users who answer
before the first reminder.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    API_TOKEN,
    API_WRITE_TOKEN,
    SECURITY_CHANNEL,
    SIGNING_SECRET,
    WEBHOOK_TOKEN,
    Stack,
    gather_bounded,
    machine,
    stack,
    user_id,
)
from powertrip.identity import TOLERANCE_WITHOUT_PORT
from powertrip.sandbox.interactions import block_action_payload, block_of, signed_request

SECURITY_USER = "U0SEC1"
GROUP_WINDOW = 600.0  # the product's default grouping window, day seconds (README, "Groups")
DAY_START = 8 * 3600  # people work 08:00-18:00 on the day
DAY_END = 18 * 3600
HOSTS = [f"web-{n}" for n in range(1, 9)] + ["ops-1", "ops-2", "bastion"]
DB_HOSTS = ["db-1", "db-2", "db-3"]
# Each command line names something of its own ({n}, seeded): the product counts the same
# command by the same account on the same host within its time tolerance as one action
# ("One event per action"), and compressing the day would otherwise merge repeats that were
# minutes apart on the day.
COMMANDS = [
    "/usr/bin/systemctl restart nginx@{n}",
    "/usr/bin/journalctl -u nginx -n {n}",
    "/usr/bin/tail -n {n} /var/log/nginx/error.log",
    "/usr/bin/vim /etc/nginx/sites-enabled/site{n}.conf",
    "/usr/sbin/nginx -t -c /etc/nginx/nginx-{n}.conf",
    "/usr/bin/apt-get install -y htop={n}",
    "/usr/bin/docker logs --tail {n} api",
    "/usr/bin/ls -la /var/lib/app/{n}",
    "/usr/bin/du -sh /var/log/app-{n}",
    "/usr/bin/kill -HUP {n}",
]
DB_COMMANDS = [
    "/usr/bin/pg_dump -f /backup/{n}.sql app",
    "/usr/bin/apt-get upgrade -y postgresql-16={n}",
    "/usr/bin/systemctl restart postgresql@16-{n}",
    "/usr/bin/psql -c 'vacuum analyze t{n}'",
]
DEPLOY_COMMANDS = [
    "/usr/bin/systemctl stop app@{n}",
    "/usr/bin/tar -xzf /tmp/release-{n}.tgz -C /srv/app",
    "/usr/bin/systemctl start app@{n}",
]


# --- the day ----------------------------------------------------------------------------------


@dataclass
class DayEvent:
    """One log line of the day: `at` in seconds since the day's midnight."""

    at: float
    actor: str
    host: str
    program: str
    message: str
    kind: str  # sshd, sudo, su


@dataclass
class Session:
    """What one account does in one go: a login, an `su`, a burst of sudo commands."""

    actor: str
    events: list[DayEvent]
    maintenance: bool = False

    @property
    def at(self) -> float:
        return self.events[0].at


@dataclass
class Day:
    people: list[str]
    bots: list[str]
    sessions: list[Session]
    maintenance: tuple[str, list[str], float, float]  # actor, hosts, from, to (day seconds)

    @property
    def events(self) -> list[DayEvent]:
        return [e for s in self.sessions for e in s.events]


def person(n: int) -> str:
    return f"user{n:07d}"  # mapped to U{n:07d} by bench_config


def make_day(seed: int, people: int, bots: int, sessions: int = 3) -> Day:
    """The day, deterministic for `seed`: for each person 1-2 ssh logins, 1-`sessions` sudo
    sessions of 5-40 commands 5-90 s apart on one host, 1 in 5 an `su`; for each bot 2-4 deploys
    (a login and 5-12 commands 1-5 s apart on a web host); person 0's maintenance window on the
    database hosts (three sessions of 8-20 commands, 20:00-22:00)."""
    rng = random.Random(seed)
    day: list[Session] = []

    def burst(actor: str, host: str, start: float, count: int, gaps: tuple[float, float],
              commands: list[str]) -> list[DayEvent]:  # fmt: skip
        at, events = start, []
        for _ in range(count):
            command = rng.choice(commands).format(n=rng.randrange(1, 100000))
            line = f"{actor} : TTY=pts/{rng.randrange(9)} ; PWD=/home/{actor} ; USER=root ; "
            events.append(DayEvent(at, actor, host, "sudo", f"{line}COMMAND={command}", "sudo"))
            at += rng.uniform(*gaps)
        return events

    def login(actor: str, host: str, at: float) -> DayEvent:
        port = rng.randrange(1024, 65535)
        return DayEvent(at, actor, host, "sshd", f"Accepted publickey for {actor} from "
                        f"203.0.113.{rng.randrange(1, 255)} port {port} ssh2: ED25519 "
                        f"SHA256:{rng.getrandbits(64):016x}", "sshd")  # fmt: skip

    for n in range(people):
        actor = person(n)
        for _ in range(rng.randint(1, 2)):
            at = rng.uniform(DAY_START, DAY_END)
            day.append(Session(actor, [login(actor, rng.choice(HOSTS), at)]))
        for _ in range(rng.randint(1, sessions)):
            start = rng.uniform(DAY_START, DAY_END - 3600)
            day.append(Session(actor, burst(actor, rng.choice(HOSTS), start, rng.randint(5, 40),
                                            (5, 90), COMMANDS)))  # fmt: skip
        if rng.random() < 0.2:
            uid = 1000 + n
            day.append(Session(actor, [DayEvent(
                rng.uniform(DAY_START, DAY_END), actor, rng.choice(HOSTS), "su",
                f"pam_unix(su:session): session opened for user root(uid=0) by {actor}(uid={uid})",
                "su")]))  # fmt: skip
    for b in range(bots):
        bot = f"deploybot{b + 1}"
        for _ in range(rng.randint(2, 4)):
            host = rng.choice(HOSTS[:8])
            start = rng.uniform(DAY_START, DAY_END)
            day.append(Session(bot, [login(bot, host, start)]))
            day.append(Session(bot, burst(bot, host, start + 2, rng.randint(5, 12), (1, 5),
                                          DEPLOY_COMMANDS)))  # fmt: skip
    dba, window = person(0), (20 * 3600.0, 22 * 3600.0)
    start = window[0] + 60
    for host in DB_HOSTS:
        events = burst(dba, host, start, rng.randint(8, 20), (10, 60), DB_COMMANDS)
        day.append(Session(dba, events, maintenance=True))
        start = events[-1].at + rng.uniform(120, 600)
    day.sort(key=lambda s: (s.at, s.actor))
    return Day(
        [person(n) for n in range(people)],
        [f"deploybot{b + 1}" for b in range(bots)],
        day,
        (dba, DB_HOSTS, *window),
    )


def think(seed: int, question: str) -> float:
    """How long (day seconds) whoever is asked takes to answer this question: 20 s - 4 min."""
    return random.Random(f"{seed}/{question}").uniform(20, 240)


# --- the replay -------------------------------------------------------------------------------


async def retried(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """`send()`, again after a dropped connection (a loaded machine: uvicorn closes an idle
    keep-alive connection as the client reuses it), at most 5 times."""
    for attempt in range(5):
        try:
            return await send()
        except httpx.TransportError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


@dataclass
class Replay:
    system: Stack
    day: Day
    speed: float
    seed: int
    grouped: bool
    phase: int  # 1, 2, ...: this phase's number in the run (`phased`)
    expect_same: float = 0.0
    event_ids: dict[int, str] = field(default_factory=dict)  # id(DayEvent) -> event id
    clicks: int = 0
    retried: int = 0
    answering: set[tuple[str, str]] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    n: int = 0

    def headers(self, write: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_WRITE_TOKEN if write else API_TOKEN}"}

    async def deliver(self, event: DayEvent) -> str:
        """`event`, as a source sends it the moment it happens: stamped now (the module's
        "Time"), its line as this phase sends it (`phased`)."""
        self.n += 1
        record = {
            "id": f"{self.system.run}-{self.n}",
            "received_at": datetime.now(UTC).isoformat(),
            "hostname": event.host,
            "program": event.program,
            "message": phased(event.message, self.phase),
        }
        response = await retried(lambda: self.system.http.post(
            f"{self.system.api_urls[0]}/webhooks/papertrail",
            json={"events": [record], "saved_search": {"id": 1, "name": "attention"}},
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        ))  # fmt: skip
        response.raise_for_status()
        (result,) = response.json()["results"]
        again = result["status"] == "duplicate" and result["event_id"].endswith(record["id"])
        if result["status"] != "started" and not again:  # `again`: a retried delivery
            raise RuntimeError(f"{event.message!r} (#{self.n}, day {event.at:.0f} s): {result}")
        self.event_ids[id(event)] = result["event_id"]
        return str(result["event_id"])

    async def expect(self, actor: str, hosts: list[str], seconds: float) -> None:
        """The planned maintenance, pre-approved through the API by its owner; waits until
        `GET /v1/expectations` lists it (visibility, which the workflow asks too)."""
        api = self.system.api_urls[0]
        response = await self.system.http.post(
            f"{api}/v1/expectations",
            json={"actor": actor, "host": hosts, "for": f"{seconds:.0f}s",
                  "reason": "planned maintenance: postgresql upgrade", "created_by": user_id(0)},
            headers=self.headers(write=True),
        )  # fmt: skip
        response.raise_for_status()
        made = response.json()["id"]
        for _ in range(200):
            listed = await self.system.http.get(f"{api}/v1/expectations", headers=self.headers())
            if any(e["id"] == made for e in listed.json()):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("the expectation was never listed")

    async def decided(self, ids: list[str]) -> bool:
        """Whether every one of `ids` is decided; removes those that are from `ids`, and stops
        at the first still pending (one read per poll while waiting, not one per event)."""
        api = self.system.api_urls[0]
        while ids:
            view = await retried(
                lambda: self.system.http.get(f"{api}/v1/events/{ids[-1]}", headers=self.headers())
            )
            if view.status_code != 200 or view.json()["status"] == "pending":
                return False
            ids.pop()
        return True

    async def play(self, actor: str) -> None:
        """One account's sessions in day order: each at `speed`, the next once it is decided."""
        dba, hosts, opens, closes = self.day.maintenance
        expected = False
        for session in (s for s in self.day.sessions if s.actor == actor):
            if session.maintenance and self.grouped and not expected:
                expected = True
                await self.expect(dba, hosts, (closes - opens) / self.speed + 120)
            began, first = time.perf_counter(), session.at
            ids = []
            for event in session.events:
                await asyncio.sleep(
                    max(0.0, began + (event.at - first) / self.speed - time.perf_counter())
                )
                ids.append(await self.deliver(event))
            deadline = time.monotonic() + 600
            pending = list(ids)
            while not await self.decided(pending):
                if time.monotonic() > deadline:  # counted at the end as not approved
                    print(f"  ! {actor}'s session at {session.at:.0f} s: undecided after 600 s")
                    break
                await asyncio.sleep(1.0)

    async def answer(self) -> None:
        """Everyone asked answers each question a think time after it appeared: the owner
        *Approve* in their DM, the security team *Approve on behalf* in the channel."""
        seen = 0
        while True:
            # Only messages posted since the last look (the dict keeps posting order; an edit
            # changes a message in place), each looked at once: it offers its buttons when new.
            fresh = list(self.system.slack.messages.values())[seen:]
            seen += len(fresh)
            for message in fresh:
                key = (message.channel, message.ts)
                if key in self.answering or message.thread_ts:
                    continue
                button = live_button(message.blocks)
                if button is None:
                    continue
                self.answering.add(key)
                task = asyncio.create_task(self.click(message.channel, message.ts, *button))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            await asyncio.sleep(0.2)

    async def click(self, channel: str, ts: str, action: str, value: str) -> None:
        await asyncio.sleep(think(self.seed, value) / self.speed)
        if action == "approve" and random.Random(f"{self.seed}/same/{value}").random() < (
            self.expect_same if self.grouped else 0.0
        ):
            action = "approve_expect"  # "Approve, and expect the same from me here for 1 h"
        user = SECURITY_USER if channel == SECURITY_CHANNEL else "U" + channel[1:]
        for _ in range(5):
            # A response_url back to the fake Slack, as Slack gives: the API's ephemeral replies
            # to the clicker (counted apart: only the clicker sees them, nothing notifies).
            reply = self.system.slack_url.removesuffix("/api/") + f"/response/{channel}-{ts}"
            shown = self.system.slack.messages.get((channel, ts))
            payload = block_action_payload(
                user,
                action,
                value,
                channel=channel,
                message_ts=ts,
                response_url=reply,
                block_id=block_of(shown.blocks, action, value) if shown else "decision",
            )
            body, headers = signed_request(SIGNING_SECRET, payload)
            await self._post_click(body, headers)
            self.clicks += 1
            for _ in range(50):  # answered: the message no longer offers the button
                await asyncio.sleep(0.2)
                message = self.system.slack.messages.get((channel, ts))
                if message is None or live_button(message.blocks) is None:
                    return
            self.retried += 1
        print(f"  ! {value}: still open after 5 clicks")

    async def _post_click(self, body: bytes, headers: dict[str, str]) -> None:
        url = f"{self.system.api_urls[0]}/slack/interactions"
        await retried(lambda: self.system.http.post(url, content=body, headers=headers))

    async def expire(self) -> None:
        """The hour of an "expect the same" button is an hour of the day: revoked (by its
        creator, through the API) once 3600/speed seconds have passed."""
        api, lasts = self.system.api_urls[0], timedelta(seconds=3600 / self.speed)
        while True:
            listed = await self.system.http.get(f"{api}/v1/expectations", headers=self.headers())
            for e in listed.json() if listed.status_code == 200 else []:
                created = datetime.fromisoformat(e["created_at"].replace("Z", "+00:00"))
                if e["via"] == "slack" and datetime.now(UTC) - created > lasts:
                    await self.system.http.delete(
                        f"{api}/v1/expectations/{e['id']}",
                        params={"by": e["created_by"]},
                        headers=self.headers(write=True),
                    )
            await asyncio.sleep(1.0)


_PORT = re.compile(r"( port )(\d+)( )")
PHASE_GAP = TOLERANCE_WITHOUT_PORT.total_seconds() + 1.0


def phased(message: str, phase: int) -> str:
    """The line as phase `phase` sends it: a login's source port moved by the phase's number
    (within 1024-65535), anything else as it is.

    Why: every phase's API is served from this process, and the API remembers for 10 minutes
    what it started, per process and Temporal namespace (`recent_starts`; each phase's fresh dev
    server has the same `default` namespace), to take a second copy of an action for a duplicate
    ("One event per action"). Events are stamped with the real time (the module's "Time"), so
    the same line in two phases is only minutes apart: a login (2-minute tolerance) could be
    taken for the previous phase's, and the replay would stop. Its port is part of its identity,
    so each phase sends its own. A line without a port (sudo, `su`) is one action only within
    5 s (`TOLERANCE_WITHOUT_PORT`), and `main` waits `PHASE_GAP` between phases, each of which
    delivers everything before it returns: no two phases' copies are that close."""
    return _PORT.sub(
        lambda m: f"{m[1]}{1024 + (int(m[2]) - 1024 + 7919 * phase) % 64512}{m[3]}", message
    )


def live_button(blocks: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(action, value) of the message's approve button while it offers one."""
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("action_id") in ("approve", "approve_on_behalf"):
                return str(element["action_id"]), str(element.get("value"))
    return None


# --- counting ---------------------------------------------------------------------------------


@dataclass
class Figures:
    name: str
    seconds: float
    calls: Counter[tuple[str, str]]  # (method, "dm" | "channel") -> calls
    events: Counter[str]  # "person" | "bot" -> events
    approved: Counter[str]  # "person" | "bot" | "expectation" -> approved events
    other: Counter[str]  # statuses other than approved
    questions: int  # distinct questions answered (clicks minus retries)
    retried: int
    splits: Counter[str] = field(default_factory=Counter)  # why a session took > 1 question
    replies: int = 0  # ephemeral replies to clicks (response_url)


def splits(day: Day, ids: dict[int, str], records: dict[str, dict[str, Any]]) -> Counter[str]:
    """Why a session was asked more than once: its questions (groups) in the order they were
    started; an event that joined a later group after the earlier one's answer was signed is
    "answered mid-burst" (the owner approved while the burst went on, and a decided group takes
    no one), else "window or full" (the earlier group refused it: past its window, or full);
    an event asked on its own with grouping on is "alone". Counted per new question."""

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    def joined(member: dict[str, Any]) -> datetime:
        entries = [t for t in member["timeline"] if t["what"] == "grouped"] or member["timeline"]
        return at(entries[0]["at"])

    why: Counter[str] = Counter()
    for session in day.sessions:
        members = [records[ids[id(e)]] for e in session.events]
        if any((m.get("decision") or {}).get("via") == "expectation" for m in members):
            continue
        why["sessions"] += 1
        groups: dict[str, list[dict[str, Any]]] = {}
        alone = [m for m in members if not m.get("group")]
        for m in members:
            if m.get("group"):
                groups.setdefault(m["group"], []).append(m)
        why["alone"] += len(alone)
        if len(groups) + len(alone) == 1:
            why["sessions asked once"] += 1
        ordered = sorted(groups.values(), key=lambda g: min(joined(m) for m in g))
        for before, after in itertools.pairwise(ordered):
            answers = [at(m["decision"]["at"]) for m in before if m.get("decision")]
            if answers and min(answers) <= min(joined(m) for m in after):
                why["answered mid-burst"] += 1
            else:
                why["window or full"] += 1
    return why


async def count(replay: Replay, seconds: float) -> Figures:
    system, day = replay.system, replay.day
    calls: Counter[tuple[str, str]] = Counter()
    for call in system.slack.calls:
        channel = str(call["args"].get("channel", ""))
        calls[(call["method"], "channel" if channel == SECURITY_CHANNEL else "dm")] += 1
    bots = set(day.bots)
    api = system.api_urls[0]
    owner = {replay.event_ids[id(e)]: ("bot" if e.actor in bots else "person") for e in day.events}

    def read(event_id: str) -> Awaitable[httpx.Response]:
        url = f"{api}/v1/events/{event_id}"
        return retried(lambda: system.http.get(url, headers=replay.headers()))

    views = await gather_bounded((read(e) for e in owner), 16)
    records = {v.json()["event_id"]: v.json() for v in views}
    events: Counter[str] = Counter(owner.values())
    approved: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for view in views:
        record = view.json()
        who = owner[record["event_id"]]
        if record["status"] != "approved":
            other[record["status"]] += 1
            continue
        approved[who] += 1
        if (record.get("decision") or {}).get("via") == "expectation":
            approved["expectation"] += 1
    return Figures(
        "grouped" if replay.grouped else "baseline",
        seconds,
        calls,
        events,
        approved,
        other,
        replay.clicks - replay.retried,
        replay.retried,
        splits(day, replay.event_ids, records) if replay.grouped else Counter(),
        len(system.slack.responses),
    )


async def phase(day: Day, args: argparse.Namespace, grouped: bool, number: int) -> Figures:
    window = f"{GROUP_WINDOW / args.speed:g}s" if grouped else "off"
    config = {"bots": day.bots, "group_window": window}
    async with stack(len(day.people), worker=args.worker, config=config) as system:
        # Stamped with the real time of delivery (the module's "Time"); each phase its own
        # login ports (`phased`: the API remembers recent starts across this process's phases).
        replay = Replay(system, day, args.speed, args.seed, grouped, number, args.expect_same)
        answering = asyncio.create_task(replay.answer())
        expiring = asyncio.create_task(replay.expire())
        began = time.perf_counter()
        try:
            await asyncio.gather(*(replay.play(a) for a in day.people + day.bots))
            seconds = time.perf_counter() - began
            await asyncio.sleep(4)  # the last in-place updates (debounced 3 s) land
        finally:
            answering.cancel()
            expiring.cancel()
            for task in list(replay.tasks):
                task.cancel()
        return await count(replay, seconds)


def per(n: float, d: float) -> str:
    return f"{n / d:6.3f}" if d else "   n/a"


def report(runs: list[Figures]) -> None:
    names = "".join(f"{f.name + ' ' + str(i // 2 + 1):>14}" for i, f in enumerate(runs))
    print(f"  {'':38}{names}")

    def row(label: str, value: Callable[[Figures], object]) -> None:
        print(f"  {label:38}" + "".join(f"{value(f)!s:>14}" for f in runs))

    def sent(f: Figures, method: str, where: str) -> int:
        return f.calls[(f"chat.{method}", where)]

    row("replay (s)", lambda f: f"{f.seconds:.0f}")
    row("questions answered", lambda f: f.questions)
    row("  clicks repeated (not taken yet)", lambda f: f.retried)
    row("  ephemeral replies to clicks", lambda f: f.replies)
    row("not approved", lambda f: ", ".join(f"{k}: {v}" for k, v in f.other.items()) or 0)
    print("  mapped users (their DMs)")
    row("  events", lambda f: f.events["person"])
    row("  approved (by an expectation)", lambda f: f"{f.approved['person']} "
        f"({f.approved['expectation']})")  # fmt: skip
    row("  new DMs (chat.postMessage)", lambda f: sent(f, "postMessage", "dm"))
    row("  in-place edits (chat.update)", lambda f: sent(f, "update", "dm"))
    row("  new DMs per event", lambda f: per(sent(f, "postMessage", "dm"), f.events["person"]))
    row("  new DMs per approved event", lambda f: per(sent(f, "postMessage", "dm"),
                                                      f.approved["person"]))  # fmt: skip
    row("  new DMs per event asked", lambda f: per(sent(f, "postMessage", "dm"),
        f.approved["person"] - f.approved["expectation"]))  # fmt: skip
    row("  edits per approved event", lambda f: per(sent(f, "update", "dm"), f.approved["person"]))
    print("  security channel (bots' questions, expectation, reminders, digests)")
    row("  bots' events (approved)", lambda f: f"{f.events['bot']} ({f.approved['bot']})")
    row("  new posts (chat.postMessage)", lambda f: sent(f, "postMessage", "channel"))
    row("  in-place edits (chat.update)", lambda f: sent(f, "update", "channel"))
    row("  new posts per bot event", lambda f: per(sent(f, "postMessage", "channel"),
                                                   f.events["bot"]))  # fmt: skip
    row("  new posts per approved event (all)", lambda f: per(sent(f, "postMessage", "channel"),
        f.approved["person"] + f.approved["bot"]))  # fmt: skip
    print("  why a session (login, su, burst) was asked more than once (grouped; sessions with no")
    print("  event approved by an expectation)")
    for key in ("sessions", "sessions asked once", "answered mid-burst", "window or full", "alone"):

        def why(f: Figures, key: str = key) -> object:
            return f.splits[key] if f.name == "grouped" else "-"

        row(f"  {key}", why)
    for f in runs:
        other = Counter({m: n for (m, _), n in f.calls.items() if not m.startswith("chat.")})
        print(
            f"  other Web API calls ({f.name}): {', '.join(f'{m}: {n}' for m, n in other.items())}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--bots", type=int, default=1)
    parser.add_argument("--sessions", type=int, default=2, help="most sudo sessions a person")
    parser.add_argument("--speed", type=float, default=60.0, help="day seconds per second")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--rounds", type=int, default=1, help="grouped/baseline pairs")
    parser.add_argument(
        "--expect-same",
        type=float,
        default=0.0,
        help="share of DM questions answered with *Approve, and expect the same from me here "
        "for 1 h* (grouped phase; its hour scaled by --speed); the rest press *Approve*",
    )
    parser.add_argument(
        "--phases", default="grouped,baseline", help="which phases, in this order, each round"
    )
    parser.add_argument("--worker", choices=["subprocess", "inprocess"], default="subprocess")
    args = parser.parse_args()
    day = make_day(args.seed, args.people, args.bots, args.sessions)
    kinds = Counter(e.kind for e in day.events)
    maint = sum(len(s.events) for s in day.sessions if s.maintenance)
    bursts = [len(s.events) for s in day.sessions if s.events[0].kind == "sudo"]
    print(
        f"attention: seed {args.seed}, {len(day.people)} people, {len(day.bots)} bots: "
        f"{len(day.events)} events ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}; "
        f"{len(bursts)} sudo sessions of {min(bursts)}-{max(bursts)}; {maint} in the maintenance "
        f"window); speed x{args.speed:g} (grouping window {GROUP_WINDOW / args.speed:g} s); "
        f"expect-the-same on {args.expect_same:.0%} of DM questions; "
        f"{machine()}"
    )
    runs: list[Figures] = []
    for _ in range(args.rounds):
        for grouped in (p == "grouped" for p in args.phases.split(",")):
            if runs:  # no line of this phase within a portless line's tolerance of the last's
                await asyncio.sleep(PHASE_GAP)
            runs.append(await phase(day, args, grouped, len(runs) + 1))
            print(f"  ... {runs[-1].name} done in {runs[-1].seconds:.0f} s; {machine()}")
    report(runs)
    print(f"  {machine()}")


if __name__ == "__main__":
    asyncio.run(main())

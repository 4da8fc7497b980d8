"""Backfill: what the webhooks missed, read from a file (`powertrip.sources.files`) or a provider's
search API (`powertrip.sources.log_search`), run in chunks through the same recognise path and
idempotent starts as a webhook delivery (`services.recognise.process`), so anything already
received is a duplicate and nothing starts twice. Polling runs each poll through it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydantic import BaseModel, Field
from temporalio.client import Client

from powertrip.contracts.polling import IngestCounts, StaleEvent
from powertrip.identity import identity_of
from powertrip.models import SecurityEvent
from powertrip.rules import RuleSet
from powertrip.services.recognise import (
    DRY_RUN,
    DRY_RUN_UNCHECKED,
    DryRun,
    ItemResult,
    Stopped,
    process,
)
from powertrip.services.starts import ResultStatus
from powertrip.sources.files import SYSLOG_SOURCE, Located
from powertrip.sources.log_search import LogSearch

IN_FLIGHT = 2  # chunks being started at once, so reading the next never idles Temporal


class Problem(BaseModel):
    """A record that could not be read: where (line, member) and why."""

    where: str
    reason: str


class Report(IngestCounts):
    """What a backfill (or one poll) did: the ingest counts, and what a person reads next."""

    matched: int = 0
    non_events: int = Field(
        default=0, description="Known non-events (failed logins, PAM bookkeeping): not asked."
    )
    without_identity: int = Field(
        default=0,
        description="Matched events with neither a source port nor a message (nor a CloudTrail "
        "eventID): only their provider id names them, so a copy delivered by another route "
        "(under another id) is not recognised as the same action.",
    )
    unchecked: int = Field(
        default=0,
        description="Dry run without Temporal: matched events not checked against what is "
        "already known (counted in `started`: they would start unless known).",
    )
    unchecked_reason: str | None = Field(
        default=None, description="Why the dry run could not check what is already known."
    )
    invalid_records: list[Problem] = Field(default_factory=list)
    would_start: list[str] = Field(default_factory=list, description="Dry run: event ids.")
    stale_events: list[StaleEvent] = Field(default_factory=list)
    interrupted: bool = Field(
        default=False,
        description="Stopped before the end (Ctrl-C): the counts are of what was done; running "
        "the same backfill again does the rest (what was done is then already known).",
    )

    def count(self, located: Located, result: ItemResult) -> None:
        """Count one record's result (`located`: where it was read)."""
        status = result.status
        if status is ResultStatus.INVALID:
            self.invalid += 1
            self.invalid_records.append(
                Problem(where=located.where, reason=result.reason or "invalid")
            )
            return
        if status is ResultStatus.UNMATCHED:
            self.unmatched += 1
            return
        if status is ResultStatus.NON_EVENT:
            self.non_events += 1
            return
        self.matched += 1
        if status in (ResultStatus.DUPLICATE, ResultStatus.CONFLICT):
            self.already_known += 1
        elif status is ResultStatus.STARTED:
            self.started += 1
            if result.event is not None and not has_identity(result.event):
                self.without_identity += 1
            if result.reason in (DRY_RUN, DRY_RUN_UNCHECKED) and result.event_id:
                self.would_start.append(result.event_id)
            if result.reason == DRY_RUN_UNCHECKED:
                self.unchecked += 1
            if result.stale and result.event is not None:
                self.stale += 1
                self.stale_events.append(StaleEvent.of(result.event))

    def merge(self, other: Report) -> None:
        """Add another part's counts and lists (chunks of one run, in order)."""
        self.add(other)
        for name in ("matched", "non_events", "without_identity", "unchecked"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unchecked_reason = self.unchecked_reason or other.unchecked_reason
        self.interrupted = self.interrupted or other.interrupted
        self.invalid_records += other.invalid_records
        self.would_start += other.would_start
        self.stale_events += other.stale_events


def has_identity(event: SecurityEvent) -> bool:
    """Whether a copy of this event by another route would be recognised as the same action
    (a natural identity, or a CloudTrail eventID, which names the record on every route)."""
    return identity_of(event) is not None or event.event_id.startswith("cloudtrail-")


async def aiter_chunks(chunks: Iterable[list[Located]]) -> AsyncIterator[list[Located]]:
    """Chunks of records (e.g. `sources.files.chunked`) as an async stream for `Backfill.run`."""
    for chunk in chunks:
        yield chunk
        await asyncio.sleep(0)  # let in-flight starts make progress between chunks


async def search_chunks(
    search: LogSearch,
    *,
    cursor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    resume: str | None = None,
    positions: list[tuple[str | None, str | None]] | None = None,
) -> AsyncIterator[list[Located]]:
    """Pages of a source's log search API (`LogSearch.fetch`) as chunks.

    `positions[i]` is, once chunk i is done, the page's `(cursor, resume)`: what a poll hands
    over when the window is done, and where a retried poll continues.
    """
    async for page in search.fetch(cursor=cursor, since=since, until=until, resume=resume):
        if positions is not None:
            positions.append((page.cursor, page.resume))
        yield [Located(item, member=item.index) for item in page.items]


# Running --------------------------------------------------------------------------------------


@dataclass
class Backfill:
    """Runs chunks of records through `recognise.process` (dry: starting nothing).

    A dry run may have no `client` (Temporal unreachable): it then says so in the report and
    counts every recognised event as one that would start unless already known. `on_chunk`
    hears of each chunk's part of the report, in order, with its ordinal; `on_record` of each
    record as it is done (`done` counts them). Once `stop` is set nothing more is started: the
    starts in flight finish and the report (`interrupted`) counts what was done."""

    client: Client | None
    rules: RuleSet
    task_queue: str
    concurrency: int = 64
    stale_before: datetime | None = None
    dry_run: bool = False
    ignore_unmatched: frozenset[str] = frozenset()  # sources whose unmatched lines need no review
    on_chunk: Callable[[Report, int], Awaitable[None] | None] | None = None
    unchecked_reason: str | None = None  # dry run without a client: why
    report: Report = field(default_factory=Report)
    on_record: Callable[[ItemResult], None] | None = None
    stop: asyncio.Event | None = None
    done: IngestCounts = field(default_factory=IngestCounts)  # so far, as records finish
    source: str = SYSLOG_SOURCE  # what invalid records are counted and reviewed under
    # Dry run: what this run would have started, so two forms of one line count once.
    _dry: DryRun | None = None

    def __post_init__(self) -> None:
        if self.dry_run:
            self._dry = DryRun()

    async def run(self, chunks: AsyncIterable[list[Located]]) -> Report:
        """Run every chunk (at most `IN_FLIGHT` at once, reported in order); the whole report."""
        pending: list[asyncio.Task[Report]] = []
        done = 0

        async def finish_oldest() -> None:
            # In order, so "chunk i is done" means every chunk before it is done too.
            nonlocal done
            part = await pending.pop(0)
            self.report.merge(part)
            if self.on_chunk is not None:
                outcome = self.on_chunk(part, done)
                if outcome is not None:
                    await outcome
            done += 1

        stream = aiter(chunks)
        exhausted = False
        try:
            while not self._stopped():
                chunk = await anext(stream, None)
                if chunk is None:
                    exhausted = True
                    break
                pending.append(asyncio.create_task(self._chunk(chunk)))
                while len(pending) >= IN_FLIGHT:
                    await finish_oldest()
            while pending:
                await finish_oldest()
        finally:
            for task in pending:
                task.cancel()
        if not exhausted:  # stopped before reading all: what was not read is not done
            self.report.interrupted = True
        return self.report

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _record_done(self, result: ItemResult) -> None:
        self.done.read += 1
        if result.status is ResultStatus.STARTED:
            self.done.started += 1
        if self.on_record is not None:
            self.on_record(result)

    async def _chunk(self, chunk: list[Located]) -> Report:
        # Renumbered within the chunk; the sample of an unreadable record goes along to review.
        items = [replace(located.item, index=i) for i, located in enumerate(chunk)]
        interrupted = False
        try:
            results = await process(
                self.client,
                self.rules,
                items,
                self.task_queue,
                self.concurrency,
                stale_before=self.stale_before,
                ignore_unmatched=self.ignore_unmatched,
                source=self.source,
                dry_run=self._dry,
                on_result=self._record_done,
                stop=self.stop,
            )
        except Stopped as stopped:
            results, interrupted = stopped.results, True
        part = Report(
            read=len(results), unchecked_reason=self.unchecked_reason, interrupted=interrupted
        )
        for result in results:
            part.count(chunk[result.index], result)
        return part

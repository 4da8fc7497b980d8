"""Backfill: what the webhooks missed, read from a log file, a saved export or a provider's API,
and run through the same rules and the same idempotent workflow starts as a webhook delivery
(`ingest.process`), so anything already received is a duplicate and nothing starts twice.

Inputs, gzipped or not, detected from the first non-blank line unless a format is given:
- syslog text, one event per line, in every dialect `powertrip.syslog` reads (RFC 3164, RFC 3339
  stamps, RFC 5424, the `journalctl` text modes);
- Papertrail archives (tab-separated, id first) and papertrail-cli `--json` output;
- NDJSON: one JSON value per line (also `journalctl -o json` and `-o json-seq`), each an event or
  a saved delivery/export (below);
- JSON documents, one or several one after another (also `journalctl -o json-pretty`): a
  Papertrail webhook payload or search API answer (`{"events": [...]}`), a CloudWatch Logs export
  (`aws logs filter-log-events`, subscription data), a list of events;
- CloudTrail's own files: a trail's delivery file `{"Records": [...]}` as written to S3 and
  `aws cloudtrail lookup-events` output (`{"Events": [{"CloudTrailEvent": "..."}]}`), every record
  named `cloudtrail-<eventID>`; `--format cloudtrail` also reads bare CloudTrail records (NDJSON
  or a list) as CloudTrail, which any other format reads as ordinary JSON;
- Wazuh/OSSEC `alerts.json` (one alert a line), `wazuh-<alert id>`;
- any log shipper's JSON records (`powertrip.sources.shippers`), by its field names.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydantic import BaseModel, Field, ValidationError
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from powertrip.identity import Occurrence, RecentStarts, identity_of
from powertrip.ingest import (
    ItemResult,
    ResultStatus,
    by_identity,
    duplicate_of,
    process,
    recognise,
)
from powertrip.known import find_known
from powertrip.models import SecurityEvent
from powertrip.rules import RuleSet
from powertrip.sources import ParsedItem, PayloadError, describe_validation_error, invalid
from powertrip.sources.cloudtrail import cloudtrail_item, cloudtrail_records, is_cloudtrail_document
from powertrip.sources.cloudwatch import parse_cloudwatch, parse_filtered_events
from powertrip.sources.eventbridge import is_eventbridge_event, parse_eventbridge
from powertrip.sources.generic import Reading, iter_json_values, parse_generic
from powertrip.sources.log_search import LogSearch
from powertrip.sources.papertrail import parse_papertrail
from powertrip.sources.shippers import FieldMap
from powertrip.sources.wazuh import is_wazuh_alert, wazuh_item
from powertrip.syslog import parse_syslog, parse_syslog_line

DRY_RUN = "dry run: would start"
DRY_RUN_UNCHECKED = "dry run: would start unless already known (Temporal not reached)"
CHUNK = 5_000  # records recognised and started together
IN_FLIGHT = 2  # chunks being started at once, so reading the next never idles Temporal
SYSLOG_SOURCE = "syslog"
CLOUDTRAIL_SOURCE = "cloudtrail"  # the source of records read from CloudTrail's own files
# Papertrail archive columns (tab-separated, no header).
_TSV_FIELDS = (
    "id",
    "generated_at",
    "received_at",
    "source_id",
    "source_name",
    "source_ip",
    "facility",
    "severity",
    "program",
    "message",
)


class InputFormat(StrEnum):
    AUTO = "auto"
    SYSLOG = "syslog"
    NDJSON = "ndjson"
    JSON = "json"
    PAPERTRAIL_TSV = "papertrail-tsv"
    CLOUDTRAIL = "cloudtrail"


GZIP_MAGIC = b"\x1f\x8b"


def open_input(path: Path) -> BinaryIO:
    """A file to read lines from, decompressed when it is gzip (CloudTrail writes its files so)."""
    raw = path.open("rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    raw.seek(0)
    return raw


@dataclass(frozen=True)
class Located:
    """A parsed record and where it came from, for messages a person can act on."""

    item: ParsedItem
    line: int | None = None
    member: int | None = None  # position inside a JSON document holding many events

    @property
    def where(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.member is not None:
            parts.append(f"event {self.member}")
        return ", ".join(parts) or "record"


class Problem(BaseModel):
    where: str
    reason: str


class StaleEvent(BaseModel):
    """What the security channel's digest says about one stale event."""

    event_id: str
    summary: str
    occurred_at: datetime

    @classmethod
    def of(cls, event: SecurityEvent) -> StaleEvent:
        where = f" on {event.host}" if event.host else ""
        origin = f" from {event.address}" if event.address else ""
        return cls(
            event_id=event.event_id,
            summary=f"{event.action} by {event.actor}{where}{origin}",
            occurred_at=event.occurred_at,
        )


class Report(BaseModel):
    """What a backfill (or one poll) did."""

    read: int = 0
    matched: int = 0
    started: int = 0
    already_known: int = 0
    unmatched: int = 0
    non_events: int = Field(
        default=0, description="Known non-events (failed logins, PAM bookkeeping): not asked."
    )
    invalid: int = 0
    stale: int = Field(default=0, description="Started without a DM: older than the cut-off.")
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

    def add(self, located: Located, result: ItemResult) -> None:
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
        counts = ("read", "matched", "started", "already_known", "unmatched", "non_events")
        for name in (*counts, "invalid", "without_identity", "unchecked"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unchecked_reason = self.unchecked_reason or other.unchecked_reason
        self.stale += other.stale
        self.invalid_records += other.invalid_records
        self.would_start += other.would_start
        self.stale_events += other.stale_events


def has_identity(event: SecurityEvent) -> bool:
    """Whether a copy of this event by another route would be recognised as the same action
    (a natural identity, or a CloudTrail eventID, which names the record on every route)."""
    return identity_of(event) is not None or event.event_id.startswith("cloudtrail-")


# Reading --------------------------------------------------------------------------------------


def detect_format(first_line: str) -> InputFormat:
    text = first_line.strip().lstrip("\x1e")
    if parse_syslog(text) is not None:  # `[ 8712.12] host sshd[1]: ...` (journalctl monotonic)
        return InputFormat.SYSLOG
    if text.startswith(("{", "[")):
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            return InputFormat.JSON  # a document spread over many lines
        return InputFormat.NDJSON
    fields = text.split("\t")
    if len(fields) >= len(_TSV_FIELDS) and fields[0].isdigit():
        return InputFormat.PAPERTRAIL_TSV
    return InputFormat.SYSLOG


def records(
    lines: Iterable[str],
    fmt: InputFormat = InputFormat.AUTO,
    source: str = SYSLOG_SOURCE,
    year: int | None = None,
    now: datetime | None = None,
    fields: FieldMap | None = None,
) -> Iterator[Located]:
    """Every record in the input with its line number (1-based). Blank lines, and `#` comment
    lines in syslog text, are not records. `fields` maps the JSON records' field names
    (`sources.json.fields`); `now` is when records without a time of their own arrived."""
    numbered: Iterator[tuple[int, str]] = enumerate(lines, start=1)
    if fmt is InputFormat.AUTO:
        for number, line in numbered:
            if line.strip():
                fmt = detect_format(line)
                numbered = _chain([(number, line)], numbered)
                break
        else:
            return
    reader = _Reader(source, fields, now or datetime.now(UTC), fmt is InputFormat.CLOUDTRAIL)
    if fmt in (InputFormat.JSON, InputFormat.CLOUDTRAIL):
        text = "".join(line for _, line in numbered)
        for member, (value, error) in enumerate(iter_json_values(text)):
            if error:
                yield Located(invalid(0, f"not a JSON document: {error}", value), line=1)
                return
            yield from reader.located(value, line=None, member=member if member else None)
        return
    for number, line in numbered:
        if not line.strip():
            continue
        if fmt is InputFormat.SYSLOG:
            if line.startswith("#"):
                continue  # an annotated log (comments), never a syslog record
            try:
                raw = parse_syslog_line(line, source, year=year, now=now)
            except ValidationError as exc:
                yield Located(invalid(0, describe_validation_error(exc), line), line=number)
                continue
            error = None if raw else "no syslog framing (expected `Mon DD HH:MM:SS host prog: msg`)"
            item = ParsedItem(index=0, raw=raw, error=error, sample=None if raw else line)
            yield Located(item, line=number)
        elif fmt is InputFormat.PAPERTRAIL_TSV:
            yield from _from_tsv(line, number)
        else:
            try:
                value = json.loads(line.strip().lstrip("\x1e"))  # RFC 7464 json-seq too
            except (ValueError, RecursionError) as exc:
                yield Located(invalid(0, f"not JSON: {exc}", line), line=number)
                continue
            yield from reader.located(value, line=number)


def _chain(
    first: list[tuple[int, str]], rest: Iterator[tuple[int, str]]
) -> Iterator[tuple[int, str]]:
    yield from first
    yield from rest


def _from_tsv(line: str, number: int) -> Iterator[Located]:
    values = line.rstrip("\r\n").split("\t", len(_TSV_FIELDS) - 1)
    if len(values) < len(_TSV_FIELDS):
        error = f"expected {len(_TSV_FIELDS)} tab-separated Papertrail archive columns"
        yield Located(invalid(0, error, line), line=number)
        return
    event = dict(zip(_TSV_FIELDS, values, strict=True))
    event["hostname"] = event["source_name"]
    for item in parse_papertrail({"events": [event]}):
        yield Located(item, line=number)


_PAPERTRAIL_KEYS = frozenset(
    {"source_name", "display_received_at", "generated_at", "source_id", "hostname", "received_at"}
)


def _is_papertrail_event(value: dict[str, Any]) -> bool:
    return "id" in value and bool(_PAPERTRAIL_KEYS & value.keys())


def _is_cloudwatch_export_event(value: dict[str, Any]) -> bool:
    """A member of `aws logs filter-log-events` output."""
    return "eventId" in value and "timestamp" in value


def _parsed(parse: Callable[[Any], list[ParsedItem]], value: Any) -> list[ParsedItem]:
    try:
        return parse(value)
    except PayloadError as exc:
        return [invalid(0, str(exc), value)]


def json_items(
    value: Any,
    source: str = SYSLOG_SOURCE,
    fields: FieldMap | None = None,
    now: datetime | None = None,
    cloudtrail: bool = False,
) -> list[ParsedItem]:
    """The records one JSON value holds, read as the backfill reads it (`cloudtrail`: bare
    CloudTrail records are CloudTrail's, as with `--format cloudtrail`)."""
    return _Reader(source, fields, now or datetime.now(UTC), cloudtrail).items(value)


@dataclass(frozen=True)
class _Reader:
    """Turns one JSON value of a backfill into its records."""

    source: str
    fields: FieldMap | None
    received: datetime
    cloudtrail: bool  # `--format cloudtrail`: bare CloudTrail records are CloudTrail's too

    def located(self, value: Any, line: int | None, member: int | None = None) -> Iterator[Located]:
        for index, item in enumerate(self.items(value)):
            at = member if member is not None else (index if self._many(value) else None)
            yield Located(item, line=line, member=at)

    @staticmethod
    def _many(value: Any) -> bool:
        return isinstance(value, list) or (
            isinstance(value, dict)
            and (
                is_cloudtrail_document(value)
                or isinstance(value.get("events"), list)
                or "awslogs" in value
                or "messageType" in value
            )
        )

    def items(self, value: Any) -> list[ParsedItem]:
        """One JSON value: an event, a list of events, or a saved delivery/export holding many."""
        if self.cloudtrail or is_cloudtrail_document(value):
            # CloudTrail's own files (or records the operator says are CloudTrail's): trusted.
            return [
                invalid(index, error, record)
                if error
                else cloudtrail_item(index, record, CLOUDTRAIL_SOURCE)
                for index, (record, error) in enumerate(cloudtrail_records(value))
            ]
        if isinstance(value, list):
            return [item for element in value for item in self.items(element)]
        if not isinstance(value, dict):
            return [invalid(0, "expected a JSON object", value)]
        if "awslogs" in value or "messageType" in value:
            return _parsed(parse_cloudwatch, value)
        if is_eventbridge_event(value):  # a saved delivery of the EventBridge endpoint
            return _parsed(parse_eventbridge, value)
        if isinstance(value.get("events"), list):
            return [item for element in value["events"] for item in self.items(element)]
        if _is_cloudwatch_export_event(value):
            return _parsed(parse_filtered_events, [value])
        if is_wazuh_alert(value):
            return [wazuh_item(0, value)]
        if _is_papertrail_event(value):
            return _parsed(parse_papertrail, {"events": [value]})
        return _parsed(
            lambda member: parse_generic(member, Reading(self.fields, self.received)), value
        )


def chunked(located: Iterable[Located], size: int = CHUNK) -> Iterator[list[Located]]:
    chunk: list[Located] = []
    for record in located:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def aiter_chunks(chunks: Iterable[list[Located]]) -> AsyncIterator[list[Located]]:
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
    """Runs chunks of records through `ingest.process` (or, dry, only through the rules).

    A dry run may have no `client` (Temporal unreachable): it then says so in the report and
    counts every recognised event as one that would start unless already known."""

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
    source: str = SYSLOG_SOURCE  # what invalid records are counted and reviewed under
    # Dry run: what this run would have started, so two forms of one line count once.
    _would_start: RecentStarts = field(default_factory=RecentStarts)

    async def run(self, chunks: AsyncIterable[list[Located]]) -> Report:
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

        try:
            async for chunk in chunks:
                pending.append(asyncio.create_task(self._chunk(chunk)))
                while len(pending) >= IN_FLIGHT:
                    await finish_oldest()
            while pending:
                await finish_oldest()
        finally:
            for task in pending:
                task.cancel()
        return self.report

    async def _chunk(self, chunk: list[Located]) -> Report:
        # Renumbered within the chunk; the sample of an unreadable record goes along to review.
        items = [replace(located.item, index=i) for i, located in enumerate(chunk)]
        if self.dry_run:
            results = await self._classify(items)
        else:
            assert self.client is not None, "only a dry run goes without Temporal"
            results = await process(
                self.client,
                self.rules,
                items,
                self.task_queue,
                self.concurrency,
                stale_before=self.stale_before,
                ignore_unmatched=self.ignore_unmatched,
                source=self.source,
            )
        part = Report(read=len(chunk), unchecked_reason=self.unchecked_reason)
        for result in results:
            part.add(chunk[result.index], result)
        return part

    async def _classify(self, items: list[ParsedItem]) -> list[ItemResult]:
        """Dry run: what `process` would answer, asking Temporal which events already exist by
        id and by natural identity (powertrip.identity), and counting two copies of one action
        in this run once. Without Temporal, every recognised event would start unless known."""
        gate = asyncio.Semaphore(self.concurrency)
        recognised = [recognise(self.rules, item) for item in items]
        natural = by_identity(items, recognised)
        client = self.client
        known_as = await find_known(client, natural) if client and any(natural) else []

        async def one(position: int, item: ParsedItem) -> ItemResult:
            found = recognised[position]
            if isinstance(found, ItemResult):
                return found
            if found is None:
                assert item.raw is not None
                non_event = self.rules.non_event(item.raw)
                if non_event is not None:
                    return ItemResult(
                        index=item.index, status=ResultStatus.NON_EVENT, rule_id=non_event.id
                    )
                return ItemResult(index=item.index, status=ResultStatus.UNMATCHED)
            event = found
            stale = self.stale_before is not None and event.occurred_at < self.stale_before
            existing: str | None = None
            if client is not None:
                async with gate:
                    existing = event.event_id if await _exists(client, event.event_id) else None
                existing = existing or (known_as[position] if natural[position] else None)
            occurrence = Occurrence.of(event) if natural[position] else None
            if existing is None and occurrence is not None:
                existing = self._would_start.find(occurrence)
                if existing is None:
                    self._would_start.remember(occurrence)
            if existing is not None:
                return duplicate_of(item, event, existing, stale)
            return ItemResult(
                index=item.index,
                status=ResultStatus.STARTED,
                reason=DRY_RUN if client is not None else DRY_RUN_UNCHECKED,
                event_id=event.event_id,
                rule_id=event.rule_id,
                stale=stale,
                event=event,
            )

        return list(await asyncio.gather(*(one(p, item) for p, item in enumerate(items))))


async def _exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


# The stale digest -----------------------------------------------------------------------------

DIGEST_LISTED = 200  # events named in the digest; the rest are counted


class StaleDigest(BaseModel):
    """One security-channel message about stale events a backfill or poll started."""

    found_by: str = Field(description="e.g. `backfill of auth.log` or `papertrail poll`.")
    stale_after_seconds: float
    total: int
    events: list[StaleEvent]


def digest_id(events: list[StaleEvent]) -> str:
    """Same stale events, same digest: a retried run cannot post it twice."""
    ids = "\n".join(sorted(e.event_id for e in events))
    return "powertrip-stale-digest-" + hashlib.sha256(ids.encode()).hexdigest()[:24]


async def announce_stale(
    client: Client, report: Report, found_by: str, stale_after: timedelta, task_queue: str
) -> str | None:
    """Start the digest workflow for the stale events this run started; its id, or None."""
    if not report.stale_events:
        return None
    from workflows.poll import StaleDigestWorkflow

    events = sorted(report.stale_events, key=lambda e: e.occurred_at)
    workflow_id = digest_id(events)
    digest = StaleDigest(
        found_by=found_by,
        stale_after_seconds=stale_after.total_seconds(),
        total=len(events),
        events=events[:DIGEST_LISTED],
    )
    try:
        await client.start_workflow(
            StaleDigestWorkflow.run,
            digest,
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"stale digest: {len(events)} events found by {found_by}",
        )
    except WorkflowAlreadyStartedError:
        pass
    return workflow_id

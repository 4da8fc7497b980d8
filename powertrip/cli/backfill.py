"""`powertrip backfill FILE|-` and `powertrip backfill --source papertrail|cloudwatch --since ...
--until ...`: process what the webhooks missed, through the same rules and idempotent workflow ids.
The API form reads the same `LogSearch` as polling."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gzip
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from temporalio.client import Client

from powertrip.cli import options
from powertrip.cli.failures import TemporalUnreachable, connect_cli
from powertrip.cli.options import FIRST_YEAR, LAST_YEAR, positive_duration, record_year
from powertrip.config import ConfigError, PowertripConfig, load_config
from powertrip.process import exit_now
from powertrip.services.backfill import Backfill, Report, aiter_chunks, search_chunks
from powertrip.services.starts import report_stale
from powertrip.settings import Settings, SettingsError, load_settings
from powertrip.sources.files import (
    SYSLOG_SOURCE,
    InputFormat,
    InputLines,
    Located,
    UnreadableInput,
    chunked,
    open_input,
    records,
)
from powertrip.sources.log_search import LogSearch, SearchError, SearchScope
from powertrip.sources.searches import POLLABLE, open_search

SHOWN = 50  # invalid records and would-start ids listed before "... and N more"

CONNECT_TIMEOUT_SECONDS = 10.0
PROGRESS_EVERY_SECONDS = 0.1  # the bar moves as records finish, redrawn at most this often
# After Ctrl-C: how long the starts in flight (and then the stale digest) may take before the
# backfill leaves without them. Each is one RPC; only a Temporal that stopped answering is slower.
INTERRUPT_GRACE_SECONDS = 30.0
INTERRUPTED = 130  # 128 + SIGINT, as shells report a process Ctrl-C ended
err = Console(stderr=True)
out = Console()


def parse_when(value: str | None, now: datetime, option: str) -> datetime | None:
    """ISO 8601 (`2026-11-20`, `2026-11-20T10:00:00Z`) or a duration ago (`2h`, `7d`)."""
    return None if value is None else options.parse_when(value, now, option=option)


def backfill(
    file: str | None = typer.Argument(
        None,
        metavar="FILE|-",
        help="Syslog text, NDJSON, a JSON export or CloudTrail file (gzipped or not).",
    ),
    source: str | None = typer.Option(
        None,
        help="With FILE: the source syslog lines are attributed to (default `syslog`). "
        "Without FILE: the provider API to read (`papertrail` or `cloudwatch`).",
    ),
    since: str | None = typer.Option(None, help="API backfill: from (ISO 8601, or `2h` ago)."),
    until: str | None = typer.Option(None, help="API backfill: until (default: now)."),
    query: str | None = typer.Option(
        None, help="API backfill: Papertrail search query or CloudWatch filter pattern."
    ),
    log_group: str | None = typer.Option(
        None, help="CloudWatch: log group (default: config `sources.cloudwatch.poll.log_group`)."
    ),
    log_stream_prefix: str | None = typer.Option(
        None, help="CloudWatch: only streams whose name starts with this."
    ),
    fmt: Annotated[
        InputFormat,
        typer.Option(
            "--format",
            help="Input format (auto: from the first line). `cloudtrail`: the file is "
            "CloudTrail's, every record in it trusted as CloudTrail's (auto trusts only a file "
            "that is one delivery or lookup-events document).",
        ),
    ] = InputFormat.AUTO,
    year: int | None = typer.Option(
        None,
        callback=record_year,
        help=f"Year of RFC 3164 timestamps (they have none), {FIRST_YEAR} to {LAST_YEAR}.",
    ),
    host: str | None = typer.Option(
        None,
        help="Host of records that name none (macOS `log show`, OpenWrt `logread`, "
        "`journalctl --no-hostname`).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would start; start nothing."),
    stale_after: Annotated[
        timedelta | None,
        typer.Option(
            parser=positive_duration,
            metavar="DURATION",
            help="Older events get no DM, only one digest (default: config `stale_after`, 7d).",
        ),
    ] = None,
    concurrency: int | None = typer.Option(None, min=1, help="Workflow starts in flight."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Process what the webhooks missed; anything already received is a duplicate."""
    if file is None and source is None:
        raise typer.BadParameter("give a FILE (or - for stdin), or --source papertrail|cloudwatch")
    if file is None and source not in POLLABLE:
        raise typer.BadParameter(
            f"--source {source}: only {' and '.join(POLLABLE)} have a search API here"
        )
    try:
        settings = load_settings()
        config = load_config(settings.config)
    except (SettingsError, ConfigError) as exc:
        err.print(f"[red]powertrip backfill:[/] {exc}")
        raise typer.Exit(2) from exc
    now = datetime.now(UTC)
    stale_age = stale_after or config.stale_after
    stream: InputLines | None = None
    if file == "-":
        stream = InputLines(sys.stdin.buffer, "stdin")
    elif file is not None:
        path = Path(file)
        if not path.is_file():
            what = "is a directory: give a file in it" if path.is_dir() else "no such file"
            err.print(f"[red]powertrip backfill:[/] {file}: {what}", highlight=False)
            raise typer.Exit(2)
        opened = open_input(path)
        # A gzipped file's size says nothing about how much text it holds.
        size = None if isinstance(opened, gzip.GzipFile) else float(path.stat().st_size)
        stream = InputLines(opened, path.name, size)
    try:
        report = asyncio.run(
            _run(
                settings,
                config,
                stream=stream,
                source=source,
                window=(parse_when(since, now, "--since"), parse_when(until, now, "--until")),
                scope=_scope(config, source, query, log_group, log_stream_prefix),
                fmt=fmt,
                year=year,
                host=host,
                dry_run=dry_run,
                stale_age=stale_age,
                concurrency=concurrency or settings.start_concurrency,
                now=now,
            )
        )
    except UnreadableInput as exc:
        err.print(f"[red]powertrip backfill:[/] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    if as_json:
        summary = report.model_dump(mode="json", exclude={"stale_events"})
        if dry_run:
            # `started` counts what would start (kept: scripts read it); said plainly too.
            summary["would_start_count"] = report.started
        out.print_json(data=summary)
    else:
        print_summary(report, dry_run)
    code = 1 if report.invalid else 0
    if report.interrupted:
        err.print(
            f"[red]powertrip backfill:[/] interrupted after {report.read:,} records "
            f"({report.started:,} {'would start' if dry_run else 'started'}); the rest was not "
            "done. Run the same command again to resume: what was done is already known "
            "(counted as duplicates).",
            highlight=False,
        )
        code = INTERRUPTED
    if sys.stdout is not None and sys.stdout is sys.__stdout__:
        for console in (out, err):
            console.file.flush()
        exit_now(code)  # in-process runners (tests) replace sys.stdout and get typer.Exit
    if code:
        raise typer.Exit(code)


class InputPosition:
    """How far into the input the records done so far are, in bytes read: the reading runs up
    to two chunks ahead of the starts, so its own count would fill the bar too early. Each
    chunk is marked with the bytes read when it was cut; within one, records are taken as
    equally long."""

    def __init__(self) -> None:
        self.records = [0]  # records in the chunks marked so far, cumulative
        self.bytes = [0]  # bytes read when each was cut

    def marked(self, chunks: Iterable[list[Located]], lines: InputLines) -> Iterator[list[Located]]:
        """`chunks`, each marked as it is read from `lines`."""
        for chunk in chunks:
            self.records.append(self.records[-1] + len(chunk))
            self.bytes.append(lines.bytes)
            yield chunk

    def bytes_at(self, done: int) -> float:
        """The bytes the first `done` records took (0 before any chunk is marked)."""
        index = bisect.bisect_left(self.records, done)
        if index >= len(self.records):
            return float(self.bytes[-1])
        if index == 0:
            return 0.0
        start, end = self.records[index - 1], self.records[index]
        share = (done - start) / (end - start)
        return self.bytes[index - 1] + share * (self.bytes[index] - self.bytes[index - 1])


async def _run(
    settings: Settings,
    config: PowertripConfig,
    *,
    stream: InputLines | None,
    source: str | None,
    window: tuple[datetime | None, datetime | None],
    scope: SearchScope,
    fmt: InputFormat,
    year: int | None,
    host: str | None,
    dry_run: bool,
    stale_age: timedelta,
    concurrency: int,
    now: datetime,
) -> Report:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[records]} records"),
        TextColumn("{task.fields[rate]}/s"),
        TextColumn("started {task.fields[started]}"),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=False,
    )
    began = time.monotonic()
    search: LogSearch | None = None
    total: float | None = None

    position = InputPosition()
    if stream is not None:
        label, total = stream.label, stream.size
        fields = config.source_options("json").fields
        chunks: AsyncIterator[list[Located]] = aiter_chunks(
            position.marked(
                chunked(
                    records(
                        stream,
                        fmt,
                        source or SYSLOG_SOURCE,
                        year=year,
                        now=now,
                        fields=fields,
                        host=host,
                    )
                ),
                stream,
            )
        )
        found_by = f"backfill of {label}"
    else:
        since, until = window
        if since is None:
            raise typer.BadParameter(f"--source {source} needs --since")
        assert source is not None
        try:
            search = open_search(source, settings, scope)
        except SearchError as exc:
            err.print(f"[red]powertrip backfill:[/] {exc}")
            raise typer.Exit(2) from exc
        chunks = search_chunks(search, since=since, until=until or now)
        label = source
        found_by = f"{source} backfill from {since:%Y-%m-%d %H:%M}"

    task = progress.add_task(label, total=total, records=0, rate="0", started=0)

    shown = 0.0

    def advance(force: bool = False) -> None:
        # As records finish (a chunk is 5,000 of them: per chunk the bar sat at 0 for long).
        nonlocal shown
        at = time.monotonic()
        if not force and at - shown < PROGRESS_EVERY_SECONDS:
            return
        shown = at
        done = runner.done
        progress.update(
            task,
            completed=position.bytes_at(done.read) if stream else done.read,
            records=done.read,
            rate=f"{done.read / max(at - began, 1e-6):,.0f}",
            started=done.started,
        )

    # After the input is open: a missing file or search token is said before Temporal's absence.
    client, unchecked = await _connect(settings, dry_run)
    runner = Backfill(
        client,
        config.rule_set(),
        settings.task_queue,
        concurrency,
        stale_before=now - stale_age,
        dry_run=dry_run,
        unchecked_reason=unchecked,
        ignore_unmatched=frozenset(
            name for name, options in config.sources.items() if options.ignore_unmatched
        ),
        on_chunk=lambda _part, _ordinal: advance(force=True),
        on_record=lambda _result: advance(),
        source=source or SYSLOG_SOURCE,
    )
    with progress, _stop_on_interrupt(runner):
        try:
            report = await _until_stopped(runner, chunks)
        except SearchError as exc:
            err.print(f"[red]powertrip backfill:[/] {exc}")
            raise typer.Exit(1) from exc
        finally:
            if stream is not None and stream.stream is not sys.stdin.buffer:
                stream.stream.close()
            if search is not None:
                await search.aclose()
    if not dry_run and client is not None:
        # Interrupted or not: the stale events started are announced, or nobody hears of them.
        stale = report_stale(client, report.stale_events, found_by, stale_age, settings.task_queue)
        if report.interrupted:
            try:
                await asyncio.wait_for(stale, INTERRUPT_GRACE_SECONDS)
            except TimeoutError:
                err.print(
                    f"[red]powertrip backfill:[/] the digest of {len(report.stale_events)} stale "
                    "events was not sent in time: rerunning sends it",
                    highlight=False,
                )
        else:
            await stale
    return report


@contextlib.contextmanager
def _stop_on_interrupt(runner: Backfill) -> Iterator[None]:
    """Ctrl-C (SIGINT) stops the backfill starting anything new (`runner.stop`); a second one
    leaves at once. Without this KeyboardInterrupt unwinds through the Temporal client and the
    process can hang in interpreter teardown (`powertrip.process.exit_now`), reporting nothing."""
    loop = asyncio.get_running_loop()
    runner.stop = stop = asyncio.Event()

    def interrupt() -> None:
        if stop.is_set():
            err.print("[red]powertrip backfill:[/] interrupted again: leaving now")
            exit_now(INTERRUPTED)
        stop.set()
        err.print(
            "[yellow]powertrip backfill:[/] interrupted: starting nothing more, finishing the "
            f"starts in flight (at most {INTERRUPT_GRACE_SECONDS:.0f}s; Ctrl-C again to leave now)"
        )

    try:
        loop.add_signal_handler(signal.SIGINT, interrupt)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _until_stopped(runner: Backfill, chunks: AsyncIterator[list[Located]]) -> Report:
    """`runner.run(chunks)`; once stopped, what it did within `INTERRUPT_GRACE_SECONDS`."""
    run = asyncio.create_task(runner.run(chunks))
    if runner.stop is None:
        return await run
    stopping = asyncio.create_task(runner.stop.wait())
    try:
        await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            await asyncio.wait({run}, timeout=INTERRUPT_GRACE_SECONDS)
    finally:
        stopping.cancel()
    if run.done():
        return run.result()
    run.cancel()  # Temporal stopped answering: the chunks not finished are not counted
    with contextlib.suppress(asyncio.CancelledError):
        await run
    runner.report.interrupted = True
    return runner.report


async def _connect(settings: Settings, dry_run: bool) -> tuple[Client | None, str | None]:
    """The Temporal client, or for a dry run without one: None and what could not be checked.

    A dry run still reads and recognises everything; only "already known" needs Temporal.
    """
    try:
        client = await asyncio.wait_for(connect_cli(settings), CONNECT_TIMEOUT_SECONDS)
    except (TemporalUnreachable, TimeoutError) as exc:
        reason = exc.reason if isinstance(exc, TemporalUnreachable) else "no answer in time"
        if not dry_run:
            raise TemporalUnreachable(settings.temporal_address, reason) from exc
        unchecked = (
            f"could not reach Temporal at {settings.temporal_address} ({reason}): "
            "which events are already known (by id or as the same action by another route) "
            "was not checked; every recognised event is listed as one that would start"
        )
        err.print(f"[yellow]powertrip backfill --dry-run:[/] {unchecked}", highlight=False)
        return None, unchecked
    return client, None


def _scope(
    config: PowertripConfig,
    source: str | None,
    query: str | None,
    log_group: str | None,
    log_stream_prefix: str | None,
) -> SearchScope:
    """The flags, falling back to the source's `poll:` options in the config."""
    options = config.sources.get(source or "")
    configured = options.poll if options and options.poll else SearchScope()
    return SearchScope(
        query=query or configured.query,
        system_id=configured.system_id,
        group_id=configured.group_id,
        log_group=log_group or configured.log_group,
        log_stream_prefix=log_stream_prefix or configured.log_stream_prefix,
    )


def print_summary(report: Report, dry_run: bool) -> None:
    table = Table(title="Backfill (dry run)" if dry_run else "Backfill", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("read", report.read),
        ("matched", report.matched),
        ("would start" if dry_run else "started", report.started),
        ("already known", report.already_known),
        ("unmatched", report.unmatched),
        ("known non-events", report.non_events),
        ("invalid", report.invalid),
    ]
    if report.stale:
        rows.append(("stale (digest only, no DM)", report.stale))
    if report.without_identity:
        rows.append(("of which without a natural identity", report.without_identity))
    for name, value in rows:
        table.add_row(name, f"{value:,}")
    out.print(table)
    if report.unchecked_reason:
        out.print(f"[bold yellow]Not checked:[/] {report.unchecked_reason}", highlight=False)
    if report.without_identity:
        out.print(
            f"[bold]Not deduplicated across routes:[/] {report.without_identity} event(s) "
            f"{'would start' if dry_run else 'started'} with neither a source port nor a message "
            "to identify them: only their id names them, so a copy that another route delivered "
            "under another id would be a second event.",
            highlight=False,
        )
    if dry_run and report.would_start:
        out.print("[bold]Would start:[/]")
        for event_id in report.would_start[:SHOWN]:
            out.print(f"  {event_id}")
        if len(report.would_start) > SHOWN:
            out.print(f"  ... and {len(report.would_start) - SHOWN} more")
    if report.invalid_records:
        out.print("[bold red]Invalid:[/]")
        for problem in report.invalid_records[:SHOWN]:
            out.print(f"  {problem.where}: {problem.reason}", markup=False, highlight=False)
        if len(report.invalid_records) > SHOWN:
            out.print(f"  ... and {len(report.invalid_records) - SHOWN} more (use --json)")

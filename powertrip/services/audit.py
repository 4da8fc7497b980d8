"""The audit trail: one row per decision (who, when, how, why, about which event), exported as
JSONL or CSV and read back (`powertrip events export`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, TextIO

from pydantic import BaseModel, BeforeValidator
from temporalio.client import Client

from powertrip.models import DecisionKind
from powertrip.services.views import EventView, page_of, views_of
from powertrip.visibility import MAX_PAGE_SIZE, EventFilter, aware, time_literal
from powertrip.webui import WebUi


class ExportFormat(StrEnum):
    """`jsonl` (one JSON object a line) or `csv` (a header, then a row a decision)."""

    JSONL = "jsonl"
    CSV = "csv"


def _blank_is_none(value: object) -> object:
    return None if value == "" else value


BlankIsNone = Annotated[str | None, BeforeValidator(_blank_is_none)]


class DecisionRow(BaseModel):
    """One decision: who, when, how (slack or cli), why, about which event."""

    event_id: str
    decision: DecisionKind
    by: str
    name: BlankIsNone = None
    at: datetime
    via: str
    reason: BlankIsNone = None
    on_behalf: bool = False
    operator: BlankIsNone = None
    authenticated: bool = False
    step_up: BlankIsNone = None
    credential_id: BlankIsNone = None
    expectation: BlankIsNone = None
    """`via: expectation`: the id of the expectation that pre-approved the event."""
    actor: str
    host: BlankIsNone = None
    rule_id: str
    source: str
    occurred_at: datetime

    @classmethod
    def rows_of(cls, view: EventView) -> list[DecisionRow]:
        """The decisions of one event (a contested approval, a report, the decision), oldest
        first."""
        decisions = sorted(
            (d for d in (view.contested, view.report, view.decision) if d is not None),
            key=lambda d: d.at,
        )
        return [
            cls(
                event_id=view.event_id,
                decision=d.kind,
                by=d.by,
                name=d.name,
                at=d.at,
                via=d.via,
                reason=d.reason,
                on_behalf=d.on_behalf,
                operator=d.operator,
                authenticated=d.authenticated,
                step_up=d.step_up.value if d.step_up else None,
                credential_id=d.credential.credential_id if d.credential else None,
                expectation=d.expectation,
                actor=view.actor,
                host=view.host,
                rule_id=view.rule_id,
                source=view.source,
                occurred_at=view.occurred_at,
            )
            for d in decisions
        ]


EXPORT_FIELDS = list(DecisionRow.model_fields)


async def decisions(
    client: Client, since: datetime, until: datetime | None, ui: WebUi
) -> list[DecisionRow]:
    """Decisions made in [since, until), oldest first.

    A decided event is either still open (reported, awaiting acknowledgement) or closed after
    its last decision, so `open OR closed since` finds every event that can hold one.
    """
    if until is not None:
        aware(until)
    base = EventFilter().query()
    closed = f"CloseTime >= {time_literal(since)}"
    query = f'{base} AND (ExecutionStatus = "Running" OR {closed})'
    rows: list[DecisionRow] = []
    token: bytes | None = None
    while True:
        executions, token = await page_of(client, query, MAX_PAGE_SIZE, token)
        for view in await views_of(client, executions, ui):
            rows += [
                r
                for r in DecisionRow.rows_of(view)
                if r.at >= since and (until is None or r.at < until)
            ]
        if token is None:
            return sorted(rows, key=lambda r: (r.at, r.event_id))


def write_rows(rows: Iterable[DecisionRow], fmt: ExportFormat, out: TextIO) -> int:
    """Write `rows` to `out` in `fmt`; how many rows were written."""
    count = 0
    if fmt is ExportFormat.JSONL:
        for row in rows:
            out.write(row.model_dump_json() + "\n")
            count += 1
        return count
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        data = row.model_dump(mode="json")
        writer.writerow({k: _csv_value(v) for k, v in data.items()})
        count += 1
    return count


def _csv_value(value: object) -> object:
    """CSV cells as spreadsheets and auditors' scripts read them: `true`/`false` (as in the
    JSONL export), empty for none; Python's `False`/`None` mean nothing outside Python."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def read_rows(text: str, fmt: ExportFormat) -> list[DecisionRow]:
    """Parse an export back (auditors' tooling, and the round-trip test)."""
    if fmt is ExportFormat.JSONL:
        return [DecisionRow.model_validate(json.loads(line)) for line in text.splitlines() if line]
    return [DecisionRow.model_validate(row) for row in csv.DictReader(io.StringIO(text))]

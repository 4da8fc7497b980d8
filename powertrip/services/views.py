"""The record, read back: list and show events for the API and the CLI alike.

Everything comes from Temporal visibility (the `Powertrip*` search attributes narrow the search,
`powertrip.visibility`) and the workflow's memo `record` (an `EventRecord`). Nothing here queries
a workflow: a query on a closed one needs a worker to replay its history, and the memo already
holds what readers need. The HIDS question is `services.hids`, the audit export `services.audit`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, Field
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from powertrip import temporal as attributes
from powertrip.contracts.approval import RECORD_MEMO, EventRecord, TimelineEntry
from powertrip.models import Decision, EventStatus
from powertrip.visibility import (
    MAX_PAGE_SIZE,
    EventFilter,
    PageTokenError,
    decode_page_token,
    encode_page_token,
    process_key,
)
from powertrip.webui import UiLinks, WebUi


class EventView(BaseModel):
    """One event as the API and the CLI show it."""

    event_id: str = Field(description="Readable, stable id; also the Temporal workflow id.")
    status: EventStatus = Field(
        description="pending: nobody with authority answered yet; approved; reported (*Not me*, "
        "awaiting the security team); acknowledged (the team handled the report)."
    )
    actor: str = Field(description="The unix or cloud user who acted.")
    host: str | None = Field(description="Host as the log provider named it.")
    address: str | None = Field(description="Where the session came from (remote address).")
    action: str = Field(description="What happened, e.g. `ssh login (publickey)`.")
    rule_id: str = Field(description="The rule that recognised the log line.")
    source: str = Field(description="The source adapter that received it, e.g. `papertrail`.")
    occurred_at: datetime = Field(description="When it happened (provider time).")
    message: str = Field(description="The original log line.")
    asked: str | None = Field(
        description="Who was asked first: `@name (Slack id)`, the id, or `the security channel`."
    )
    group: str | None = Field(
        default=None,
        description="The group (its workflow id) whose one question this event joined: its "
        "decision names the group too. Null: asked on its own.",
    )
    decision: Decision | None = Field(description="Approval or acknowledgement; null until then.")
    report: Decision | None = Field(description="The *Not me* report, if any.")
    contested: Decision | None = Field(
        default=None, description="An approval on the owner's behalf that their *Not me* overruled."
    )
    contest_until: datetime | None = Field(
        default=None,
        description="Approved on the owner's behalf: until then the owner may still say *Not me*.",
    )
    timeline: list[TimelineEntry] = Field(
        description="received, notified, reminded (one per reminder), notify_failed, approved, "
        "reported, acknowledged: what happened, when, by whom."
    )
    workflow_status: str = Field(
        description="Temporal's view: running, completed, or failed/terminated/timed_out if the "
        "workflow ended abnormally (then `status` is the last one recorded)."
    )
    received_at: datetime = Field(description="When Powertrip started the event's workflow.")
    closed_at: datetime | None = Field(description="When the workflow finished, if it has.")
    temporal_url: str = Field(description="The event's workflow in the Temporal Web UI.")
    links: UiLinks = Field(description="Where to investigate it in the Temporal Web UI.")


async def record_of(client: Client, info: WorkflowExecutionInfo) -> EventRecord | None:
    """The memo `record` of one listed execution (None: not an event workflow), decoded alone:
    the SDK's WorkflowExecution would also decode every search attribute, a third of the cost of
    a HIDS lookup."""
    payload = info.memo.fields.get(RECORD_MEMO)
    if payload is None:  # not an event workflow after all: nothing to show
        return None
    [record] = await client.data_converter.decode([payload], [EventRecord])
    return record if isinstance(record, EventRecord) else None


def _utc(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


async def _view(client: Client, info: WorkflowExecutionInfo, ui: WebUi) -> EventView | None:
    record = await record_of(client, info)
    if record is None:
        return None
    event = record.event
    status = WorkflowExecutionStatus(info.status or WorkflowExecutionStatus.RUNNING)
    links = ui.links(record, info.execution.run_id)
    return EventView(
        event_id=event.event_id,
        status=record.status,
        actor=event.actor,
        host=event.host,
        address=event.address,
        action=event.action,
        rule_id=event.rule_id,
        source=event.source,
        occurred_at=event.occurred_at,
        message=event.message,
        asked=record.recipient.asked_label if record.recipient else None,
        group=record.group,
        decision=record.decision,
        report=record.report,
        contested=record.contested,
        contest_until=record.contest_until,
        timeline=record.timeline,
        workflow_status=status.name.lower(),
        received_at=_utc(info.start_time),
        closed_at=_utc(info.close_time) if info.HasField("close_time") else None,
        temporal_url=links.workflow,
        links=links,
    )


async def views_of(
    client: Client, infos: Iterable[WorkflowExecutionInfo], ui: WebUi
) -> list[EventView]:
    """The events among `infos` as the API and CLI show them."""
    views = [await _view(client, info, ui) for info in infos]
    return [v for v in views if v is not None]


class EventPage(BaseModel):
    """One page of events, and how to get the next."""

    events: list[EventView] = Field(
        description="Open events first (most recently received first), then closed ones, most "
        "recently closed first: Temporal visibility's order, stable across pages."
    )
    next_page_token: str | None = Field(
        description="Pass as `page_token` with the same filters for the next page; null: no more."
    )
    query: str = Field(description="The Temporal visibility query; paste it into the Web UI.")


async def page_of(
    client: Client, query: str, page_size: int, token: bytes | None
) -> tuple[Sequence[WorkflowExecutionInfo], bytes | None]:
    """One ListWorkflowExecutions call (at most `page_size`, 1 to 500): the raw visibility call
    every read makes; (executions, next page's token or None). PageTokenError when Temporal
    refuses a page token."""
    request = ListWorkflowExecutionsRequest(
        namespace=client.namespace,
        page_size=min(max(page_size, 1), MAX_PAGE_SIZE),
        next_page_token=token or b"",
        query=query,
    )
    try:
        response = await client.workflow_service.list_workflow_executions(request, retry=True)
    except RPCError as exc:
        if token is not None and exc.status is RPCStatusCode.INVALID_ARGUMENT:
            raise PageTokenError(f"Temporal refused the page: {exc.message}") from exc
        raise
    return response.executions, response.next_page_token or None


async def list_events(
    client: Client,
    filters: EventFilter,
    ui: WebUi,
    page_size: int = 50,
    page_token: str | None = None,
    key: bytes | None = None,
) -> EventPage:
    """One page of events (at most `page_size`, 1 to 500); `key` signs the page tokens
    (`visibility.page_token_key`; None: valid in this process only). Raises PageTokenError
    for a token not issued for these filters, RecordError for filters that cannot be asked."""
    key = key or process_key()
    query = filters.query()
    token = decode_page_token(query, page_token, key) if page_token else None
    executions, next_token = await page_of(client, query, page_size, token)
    return EventPage(
        events=await views_of(client, executions, ui),
        next_page_token=encode_page_token(query, next_token, key) if next_token else None,
        query=query,
    )


async def iter_events(
    client: Client, filters: EventFilter, ui: WebUi, limit: int | None = None
) -> AsyncIterator[EventView]:
    """Every matching event, page after page (the CLI's list and export)."""
    token: str | None = None
    seen = 0
    while True:
        page = await list_events(client, filters, ui, MAX_PAGE_SIZE, token)
        for view in page.events:
            if limit is not None and seen >= limit:
                return
            seen += 1
            yield view
        token = page.next_page_token
        if token is None:
            return


async def show_event(client: Client, event_id: str, ui: WebUi) -> EventView | None:
    """The event's latest run, from `describe` (memo and status; no worker needed)."""
    try:
        description = await client.get_workflow_handle(event_id).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND and not attributes.namespace_not_found(exc):
            return None
        raise
    return await _view(client, description.raw_description.workflow_execution_info, ui)

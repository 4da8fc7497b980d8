"""Which events are already recorded as the same action (powertrip.identity), from Temporal
visibility: the lookup every start path (webhooks, polling, backfill and its dry run) makes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from powertrip import temporal as attributes
from powertrip.contracts.approval import EventRecord
from powertrip.identity import Occurrence
from powertrip.models import SecurityEvent
from powertrip.visibility import WORKFLOW_TYPE, RecordError, literal, time_literal

LOOKUP_GROUP = 100  # identities per visibility query


async def _recorded(client: Client, query: str) -> list[Occurrence]:
    """The occurrences of the events `query` finds, each arrived when its workflow started, by
    the identity their memo's event has now (whatever attribute they were recorded under)."""
    found = []
    try:
        async for execution in client.list_workflows(query, page_size=1000):
            record = await execution.memo_value("record", None, type_hint=EventRecord)
            if isinstance(record, EventRecord):
                occurrence = Occurrence.of(record.event, arrived=execution.start_time)
                if occurrence is not None:
                    found.append(occurrence)
    except RPCError as exc:
        # Temporal's time-skipping test server has no visibility: nothing can be looked up
        # there (every real server, the dev server included, has it).
        if exc.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
    return found


def _queries(group: Sequence[Occurrence], actors: Iterable[str]) -> list[str]:
    reach = max(o.reach for o in group)
    since = time_literal(min(o.at for o in group) - reach)
    until = time_literal(max(o.at for o in group) + reach)
    base = (
        f'WorkflowType = {literal(WORKFLOW_TYPE)} AND ExecutionStatus != "ContinuedAsNew" '
        f"AND {attributes.EVENT_TIME.name} >= {since} AND {attributes.EVENT_TIME.name} <= {until}"
    )
    name = attributes.IDENTITY.name
    # Events recorded before a login's key named its action carry its legacy identity: found by
    # it, then compared by the key their memo gives now (`_recorded`), so another auth method's
    # login recorded then is still no copy.
    wanted = {o.identity for o in group} | {o.legacy_identity for o in group if o.legacy_identity}
    identities = ", ".join(literal(i) for i in sorted(wanted))
    queries = [f"{base} AND {name} IN ({identities})"]
    # Events recorded before the attribute existed: found by actor and time, compared here.
    safe = []
    for actor in sorted(set(actors)):
        try:
            safe.append(literal(actor))
        except RecordError:
            continue
    if safe:
        queries.append(
            f"{base} AND {name} IS NULL AND {attributes.ACTOR.name} IN ({', '.join(safe)})"
        )
    return queries


async def find_known(
    client: Client, events: Sequence[SecurityEvent | None], arrived: datetime | None = None
) -> list[str | None]:
    """For each event, the id of an event already recorded that is the same action (another
    event id, same identity, within the tolerance), else None (`arrived`: when these events
    were received). One or two visibility queries per `LOOKUP_GROUP` events, grouped by time so
    each query's range stays narrow."""
    found: list[str | None] = [None] * len(events)
    wanted = [
        (index, occurrence, event)
        for index, event in enumerate(events)
        if event is not None and (occurrence := Occurrence.of(event, arrived)) is not None
    ]
    wanted.sort(key=lambda member: member[1].at)
    for start in range(0, len(wanted), LOOKUP_GROUP):
        group = wanted[start : start + LOOKUP_GROUP]
        candidates: list[Occurrence] = []
        for query in _queries([o for _, o, _ in group], (e.actor for _, _, e in group)):
            candidates += await _recorded(client, query)
        for index, occurrence, _ in group:
            found[index] = next(
                (
                    c.event_id
                    for c in sorted(candidates, key=lambda c: abs(c.at - occurrence.at))
                    if c.event_id != occurrence.event_id and occurrence.same_action(c)
                ),
                None,
            )
    return found

"""The reminder digest's answers (workflows/reminders.py): each approval workflow in a batch is
told its slot by the worker's Temporal client, not by the digest's own commands."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from powertrip.contracts.reminders import SLOT_SIGNAL, SlotAnswer, SlotAnswers

# Signals in flight at once: a batch is at most 200, and the server also serves the DMs.
IN_FLIGHT = 20


class ReminderActivities:
    """`answer_slots`, with the worker's Temporal client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn
    async def answer_slots(self, request: SlotAnswers) -> int:
        """Signal `reminder_slot` to each approval workflow of `request`; returns how many were
        told. One whose workflow has closed meanwhile (decided) is skipped. Any other refusal
        (the server unreachable) raises `RPCError` once all were tried, and Temporal retries the
        whole batch: a slot told twice is harmless (the workflow keeps the one of its cycle)."""
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def tell(answer: SlotAnswer) -> bool:
            async with gate:
                handle = self._client.get_workflow_handle(answer.event_id)
                try:
                    await handle.signal(SLOT_SIGNAL, answer.slot)
                except RPCError as exc:
                    if exc.status == RPCStatusCode.NOT_FOUND:
                        return False
                    raise
                return True

        told = await asyncio.gather(*(tell(a) for a in request.answers), return_exceptions=True)
        failed = [t for t in told if isinstance(t, BaseException)]
        if failed:
            raise failed[0]
        return sum(1 for t in told if t is True)

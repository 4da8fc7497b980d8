"""The reminder digest's signals (workflows/reminders.py), sent by the worker's Temporal client,
not by workflows' own commands: a due reminder handed to its collector, and each approval
workflow in a batch told its slot."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.api.common.v1 import Payloads, WorkflowExecution
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from powertrip.contracts.reminders import (
    DUE_SIGNAL,
    SLOT_SIGNAL,
    HandOff,
    SlotAnswer,
    SlotAnswers,
    reminder_collector_id,
    reminder_digest_id,
)

# Signals in flight at once: a batch is at most 200, and the server also serves the DMs.
IN_FLIGHT = 20


class ReminderActivities:
    """`hand_off` and `answer_slots`, with the worker's Temporal client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn
    async def hand_off(self, request: HandOff) -> bool:
        """Signal `due` with `request.reminder` to its collector
        (`reminder_collector_id(request.task_queue, event_id)`), or, with that one not running,
        to the task queue's digest. Returns False when neither runs: the approval posts its own
        reminder. Run as a local activity in the workflow task whose timer made the reminder
        due, so a reminder costs that one task, not a signal command's completion and an
        answer's too. Raises `RPCError` for any other refusal (the server unreachable): retried.

        The signal's request id is the reminder's own (`hand-off/<event id>/<cycle>`), so
        Temporal takes an attempt retried after a timeout whose signal had landed as the same
        signal, not a second one. The SDK's `signal()` draws a new id each call: at 10,000
        pending 45 and 83 attempts timed out in two runs, and each whose signal had landed
        listed its reminder twice (issue 16). Temporal keeps a run's signal request ids until
        it closes or continues as new, so a retry that lands in the collector's next run, or in
        a collector started after the first attempt found none and went to the digest, is
        still a second signal; so is a hand-off from a workflow task run again after its worker
        died (a new `cycle`). The digest drops the first two kinds of copy (`DueReminder.key`,
        patch `reminder-digest-lists-once`); the third waits on its own cycle's answer and is
        a reminder of its own. The raw request carries no headers and no serialization context:
        the worker's client has no interceptors or payload codec."""
        reminder = request.reminder
        payloads = await self._client.data_converter.encode([reminder])
        for workflow_id in (
            reminder_collector_id(request.task_queue, reminder.event_id),
            reminder_digest_id(request.task_queue),
        ):
            signal = SignalWorkflowExecutionRequest(
                namespace=self._client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=workflow_id),
                signal_name=DUE_SIGNAL,
                input=Payloads(payloads=payloads),
                identity=self._client.identity,
                request_id=f"hand-off/{reminder.event_id}/{reminder.cycle}",
            )
            try:
                await self._client.workflow_service.signal_workflow_execution(signal, retry=True)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    continue
                raise
            return True
        return False

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

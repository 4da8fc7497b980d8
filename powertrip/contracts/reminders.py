"""`ReminderDigestWorkflow` (workflows/reminders.py): reminders that fall due together are posted
as one message. What an `ApprovalWorkflow` and the digest exchange, and what the digest asks the
Slack activity to post.

Not to be confused with the stale report (`powertrip.contracts.polling.StaleReport`), one message
about old events a backfill or poll found.
"""

from __future__ import annotations

import hashlib
import zlib
from datetime import timedelta

from pydantic import BaseModel

from powertrip.models import SecurityEvent

REMINDER_DIGEST_WORKFLOW = "ReminderDigestWorkflow"
REMINDER_COLLECTOR_WORKFLOW = "ReminderCollectorWorkflow"
DUE_SIGNAL = "due"
"""Collector (and digest) workflow signal: a `DueReminder`."""
DUE_BATCH_SIGNAL = "due_batch"
"""Digest workflow signal: a `DueBatch`, from a collector."""
SLOT_SIGNAL = "reminder_slot"
"""`ApprovalWorkflow` signal: the digest's answer, a `ReminderSlot`."""

HANDED_OFF = "handed to the reminder digest"
"""The timeline's note of a reminder handed to the digest (patch `reminders-handed-off`): a
reminder it does not take is posted on its own later, with a note of its own."""

SLOT_TIMEOUT = timedelta(minutes=1)
"""How long an approval workflow waits for its slot before posting its reminder on its own."""

DIGEST_TASK_TIMEOUT = timedelta(minutes=1)
"""The digest workflow's workflow-task timeout (Temporal's default: 10 s). A burst of thousands
of due reminders grows its history to 10,000 events and more before it may continue as new;
once a busy worker evicts it from its cache, the next task replays all of it, and at 10,000
pending that took over 10 s: the task timed out, was retried, replayed again, timed out again,
and the digest answered nobody (issue 16, `bench/scale.py --events 10000`)."""


COLLECTORS = 4
"""Reminder collectors per task queue. Temporal fails a workflow task once more than 100 events
(`history.maximumBufferedEventsBatch`) arrive while it runs: at 10,000 pending, reminders fell
due at 25-28 a second, the one digest's tasks took seconds on a busy worker, and the server
failed them over and over (`WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND`, issue 16). Each
collector takes a quarter of the `due` signals and hands them on in one signal a second."""


def reminder_task_queue(task_queue: str) -> str:
    """The task queue the digest and collectors of `task_queue` run on, with a worker of their
    own (`worker.build_reminder_worker`): their workflow tasks and activities must not wait
    behind the approvals'. At 3,000-10,000 pending the approvals' workflow tasks waited 13-60 s
    to be picked up; the digest's, in the same queue, then answered each batch's slots after the
    approvals' one-minute wait had ended, and each posted its own reminder at the channel's pace
    of one a second (issue 16)."""
    return f"{task_queue}-reminders"


def reminder_digest_id(task_queue: str) -> str:
    """The one digest workflow of `task_queue` (started idempotently by the worker)."""
    return f"powertrip-reminder-digest-{task_queue}"


def reminder_collector_ids(task_queue: str) -> list[str]:
    """The `COLLECTORS` collector workflows of `task_queue` (started with its digest)."""
    return [f"powertrip-reminder-collector-{task_queue}-{n}" for n in range(COLLECTORS)]


def reminder_collector_id(task_queue: str, event_id: str) -> str:
    """The collector that takes `event_id`'s due reminders: the same one every time (CRC-32 of
    the id, not Python's `hash`, which differs between processes and so between replays)."""
    return reminder_collector_ids(task_queue)[zlib.crc32(event_id.encode()) % COLLECTORS]


class DigestLine(BaseModel):
    """One pending event in a reminder digest."""

    event: SecurityEvent
    asked: str
    incident: bool = False
    waited_seconds: float = 0.0
    ui_url: str | None = None


class DueReminder(BaseModel):
    """An approval workflow's reminder is due (`cycle`: its time, ISO 8601, so a late answer to
    an earlier cycle is not taken for this one). `answer_in_digest` false: the approval handed
    the reminder off and did not wait (patch `reminders-handed-off`), so it is told only when
    it must post its own; true: it waits for its slot either way."""

    event_id: str
    cycle: str = ""
    line: DigestLine
    answer_in_digest: bool = True
    due_at: str = ""
    """When the reminder was scheduled to fall due (ISO 8601; the digest gathers from it). Empty
    from runs before it: `cycle`, when the run took its timer, stands for it."""

    def key(self) -> str:
        """Which reminder this is, the same for every copy of it: a digest (32 hex characters,
        whatever the fields' lengths) of its event and its `cycle`. A hand-off retried into a
        collector's next run hands on the same key. A workflow task run again after its
        worker died hands on a new `cycle` (the same `due_at`), which its run then waits on:
        a reminder of its own, or the run would wait for an answer that never comes."""
        return hashlib.sha256(f"{self.event_id}\0{self.cycle}".encode()).hexdigest()[:32]


class HandOff(BaseModel):
    """The local activity `hand_off`: give `reminder` to its collector on the approvals'
    `task_queue` (or, with no collectors running, to the digest)."""

    task_queue: str
    reminder: DueReminder


class ReminderSlot(BaseModel):
    """Post your own reminder (`in_digest` false), or you are in the digest posted as
    `digest_ts`."""

    cycle: str
    in_digest: bool = False
    digest_ts: str | None = None


class DueBatch(BaseModel):
    """Due reminders a collector hands on to the digest (at most
    `workflows.reminders.FORWARD_BATCH`)."""

    reminders: list[DueReminder]


class ReminderCollectorInput(BaseModel):
    """A collector's input, carried over `continue_as_new`: the digest it hands reminders to
    (`digest_id`: the collectors run on `reminder_task_queue`, the digest is named after the
    approvals' task queue), and the reminders not yet handed on."""

    digest_id: str
    carried: list[DueReminder] = []


class SlotAnswer(BaseModel):
    """Tell approval workflow `event_id` its `slot`."""

    event_id: str
    slot: ReminderSlot


class SlotAnswers(BaseModel):
    """The activity `answer_slots`: one `reminder_slot` signal each, from the worker's client
    instead of the digest's history (two history events each, and up to 200 of them coming
    back at once, past what Temporal buffers behind a running workflow task)."""

    answers: list[SlotAnswer]


class ReminderDigestInput(BaseModel):
    """The digest workflow's input, carried over `continue_as_new`: post a digest once more than
    `digest_after` reminders are due together."""

    digest_after: int = 5
    carried: list[DueReminder] = []
    listed: dict[str, str] = {}
    """The reminders it listed or told to post their own lately (`DueReminder.key` -> when, ISO
    8601), so a copy that arrives after continue-as-new is not listed again."""


class ReminderDigestRequest(BaseModel):
    """The Slack activity `post_digest`: one message listing `lines`."""

    lines: list[DigestLine]

"""Every `workflow.patched` id, and the ledger that says why it exists and when it can go.

A patch guards a change to the commands a workflow issues (an activity, timer or signal more or
less) so that workflows started before the change replay their old branch. The recorded
histories under `tests/histories/<generation>/` are the proof: `tests/test_replay.py` replays
every generation through today's code, and checks that the newest generation passes through
every patch listed here, and that every patch the workflows call is listed.

Retiring a patch (README, "Changing a workflow safely"): once no workflow that lacks its marker
can still be open (the oldest generation that lacks it says when such workflows were started;
add the longest an event stays open and the namespace retention), replace `workflow.patched(id)`
with `workflow.deprecate_patch(id)` and keep only the new branch; when no workflow with the
marker is open either, remove the call, delete the generations that needed it and its entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from temporalio import workflow

# ApprovalWorkflow
STALE_NO_DM = "backfill-stale-no-dm"
PUBLISH_INCIDENT_MESSAGE = "publish-incident-message"
REMINDER_DIGEST = "reminder-digest"
NOT_ME_FIRST = "not-me-before-queued-approval"
RECHECK_TEAM = "recheck-security-team"
VERIFY_DECISIONS = "verify-decisions"
CONTEST_APPROVAL = "contest-approval-on-behalf"
ESCALATION_SCHEDULE = "escalation-schedule"
PAGE_NOT_ME = "not-me-page"
PAGES_FOLLOW_DECISIONS = "pages-follow-decisions"
CONTINUE_BEFORE_SIGNAL_LIMIT = "continue-as-new-before-signal-limit"
VERIFY_IN_BATCHES = "verify-decisions-in-batches"
STEP_UP_APPROVALS = "step-up-approvals"
GROUPED_QUESTIONS = "grouped-questions"
EXPECTATION_APPROVALS = "expectation-approvals"
LOCAL_LOOKUPS = "local-lookups"
REMINDERS_VIA_COLLECTORS = "reminders-via-collectors"
LOCAL_FIRST_QUESTION = "local-first-question"
LOCAL_MESSAGE_UPDATES = "local-message-updates"
APPROVAL_BASELINE = "approval-baseline-2026-12-01"
BOUNDED_LOCAL_SLACK = "bounded-local-slack-calls"
APPROVAL_BASELINE_K = "approval-baseline-2026-12-01-k"
REMINDERS_HANDED_OFF = "reminders-handed-off"
APPROVAL_BASELINE_2 = "approval-baseline-2026-12-02"
# GroupWorkflow
GROUP_APPROVES_WHAT_IT_SHOWED = "group-approves-what-it-showed"
# PollWorkflow
POLL_ANY_SOURCE = "poll-any-source"
# ReminderDigestWorkflow
BOUNDED_DIGEST = "bounded-reminder-digest"
DIGEST_DRAINS_BACKLOG = "reminder-digest-drains-backlog"
DIGEST_RETRIES_BATCH = "reminder-digest-retries-failed-batch"
DIGEST_ANSWERS_BY_ACTIVITY = "reminder-digest-answers-by-activity"
DIGEST_ANSWERS_HANDED_OFF = "reminder-digest-answers-handed-off"
DIGEST_GATHERS_FROM_DUE = "reminder-digest-gathers-from-due"
DIGEST_LISTS_ONCE = "reminder-digest-lists-once"

APPROVAL_PATCHES = frozenset(
    {
        STALE_NO_DM,
        PUBLISH_INCIDENT_MESSAGE,
        REMINDER_DIGEST,
        NOT_ME_FIRST,
        RECHECK_TEAM,
        VERIFY_DECISIONS,
        CONTEST_APPROVAL,
        ESCALATION_SCHEDULE,
        PAGE_NOT_ME,
        PAGES_FOLLOW_DECISIONS,
        CONTINUE_BEFORE_SIGNAL_LIMIT,
        VERIFY_IN_BATCHES,
        STEP_UP_APPROVALS,
        GROUPED_QUESTIONS,
        EXPECTATION_APPROVALS,
        LOCAL_LOOKUPS,
        REMINDERS_VIA_COLLECTORS,
        LOCAL_FIRST_QUESTION,
        LOCAL_MESSAGE_UPDATES,
    }
)
"""The ApprovalWorkflow patches a run that begins with the `APPROVAL_BASELINE` marker takes
without asking. Never change it: runs are recorded with it."""

APPROVAL_BASELINES: tuple[tuple[str, frozenset[str]], ...] = (
    (APPROVAL_BASELINE_2, APPROVAL_PATCHES | {BOUNDED_LOCAL_SLACK, REMINDERS_HANDED_OFF}),
    (APPROVAL_BASELINE_K, APPROVAL_PATCHES | {BOUNDED_LOCAL_SLACK}),
    (APPROVAL_BASELINE, APPROVAL_PATCHES),
)
"""Each baseline marker and the ApprovalWorkflow patches it stands for, newest first. Never
change a line (runs are recorded with it); a deploy that adds an ApprovalWorkflow patch adds a
line at the top: a new baseline for every patch so far (README, "Changing a workflow safely")."""


def approval_baseline() -> frozenset[str]:
    """Asked first thing in an ApprovalWorkflow run (before any other command): the patches its
    baseline stands for. A new run records the newest baseline's marker; a run that began with an
    older one replays it and gets that one's patches; a run of code from before baselines gets
    none, and asks each patch as it did."""
    for marker, covered in APPROVAL_BASELINES:
        if workflow.patched(marker):
            return covered
    return frozenset()


def patched(patch_id: str) -> bool:
    """`workflow.patched(patch_id)`, except for a patch that the run's baseline stands for (an
    ApprovalWorkflow's, or a workflow's built on it: its `baseline` attribute, decided first
    thing by `approval_baseline`): that is taken without a marker of its own.

    Why: the SDK records each patch's marker with an upsert of the `TemporalChangeVersion`
    search attribute, so 19 patches made 38 of the 60 history events of an approved event, and
    as many visibility writes on the server, in its first workflow task."""
    if patch_id in getattr(workflow.instance(), "baseline", ()):
        return True
    return workflow.patched(patch_id)


@dataclass(frozen=True)
class Patch:
    """One ledger line."""

    id: str
    workflow: str
    added: date
    why: str
    needed_by: str = ""
    """The oldest recorded generation (`tests/histories/<generation>`) whose histories lack the
    marker and so replay the old branch."""
    retire_when: str = ""
    """When `workflow.deprecate_patch` may replace it."""


# The open-ended part of every `retire_when`: an event stays open until someone decides it.
_NO_OLD_OPEN = (
    "no {workflow} started before {added} is still open (`powertrip events list --until "
    "{added}` and the Temporal UI's list with StartTime < {added} show none), plus the "
    "namespace retention"
)


def _patch(id: str, workflow: str, added: date, why: str, needed_by: str) -> Patch:
    return Patch(
        id=id,
        workflow=workflow,
        added=added,
        why=why,
        needed_by=needed_by,
        retire_when=_NO_OLD_OPEN.format(workflow=workflow, added=added.isoformat()),
    )


LEDGER: tuple[Patch, ...] = (
    _patch(
        STALE_NO_DM,
        "ApprovalWorkflow",
        date(2026, 11, 27),
        "Events a backfill finds long after they happened skip the DM and the reminders; the "
        "security channel hears of them in one digest.",
        "2026-11-27",
    ),
    _patch(
        PUBLISH_INCIDENT_MESSAGE,
        "ApprovalWorkflow",
        date(2026, 11, 27),
        "The incident alert is published to the memo at once, so the API accepts its "
        "Acknowledge button before the next reminder.",
        "2026-11-27",
    ),
    _patch(
        REMINDER_DIGEST,
        "ApprovalWorkflow",
        date(2026, 11, 27),
        "A due reminder first asks the task queue's ReminderDigestWorkflow whether it goes into "
        "a digest (a signal and a wait), so bursts of reminders are one message.",
        "2026-11-27",
    ),
    _patch(
        NOT_ME_FIRST,
        "ApprovalWorkflow",
        date(2026, 11, 27),
        "A Not me queued behind an approval (clicks queued while workers were down) is taken "
        "first: the report is never lost to the order of arrival.",
        "2026-11-27",
    ),
    _patch(
        RECHECK_TEAM,
        "ApprovalWorkflow",
        date(2026, 11, 27),
        "A click allowed only through security-team membership is checked against the team as "
        "it is now (an activity), so a removed member cannot decide pending events.",
        "2026-11-27",
    ),
    _patch(
        VERIFY_DECISIONS,
        "ApprovalWorkflow",
        date(2026, 11, 30),
        "Each decision is verified (a local activity checks the API's or CLI's signature) and "
        "its nonce taken once before it counts; forged and refused ones are recorded in the "
        "timeline; the decision's time is the workflow's time of receipt.",
        "2026-11-27",
    ),
    _patch(
        CONTEST_APPROVAL,
        "ApprovalWorkflow",
        date(2026, 11, 30),
        "After an approval on the owner's behalf the workflow stays open for the contest window "
        "(a timer): the owner's DM keeps *Not me*, which reopens the event as reported.",
        "2026-11-27",
    ),
    _patch(
        ESCALATION_SCHEDULE,
        "ApprovalWorkflow",
        date(2026, 11, 30),
        "The event's escalation policy drives the waiting: a timer to its next step, a reminder "
        "or a PagerDuty page (started without blocking the wait), instead of a reminder every "
        "`renotify_after` (still the policy of an event that has nothing else).",
        "2026-11-27",
    ),
    _patch(
        PAGE_NOT_ME,
        "ApprovalWorkflow",
        date(2026, 11, 30),
        "A *Not me* pages on-call at once (critical), beside the incident alert in Slack.",
        "2026-11-27",
    ),
    _patch(
        PAGES_FOLLOW_DECISIONS,
        "ApprovalWorkflow",
        date(2026, 11, 30),
        "A decision settles the event's pages: approving (or reporting) resolves the pages "
        "about it being undecided; the security team's acknowledgement of a *Not me* "
        "acknowledges and resolves its page; the workflow ends once PagerDuty has them.",
        "2026-11-27",
    ),
    _patch(
        CONTINUE_BEFORE_SIGNAL_LIMIT,
        "ApprovalWorkflow",
        date(2026, 12, 1),
        "Once a run has received `signals_per_run` signals (2,000) or Temporal suggests it, and "
        "every decision received is handled, the workflow continues as new: a flood of forged "
        "`decide` signals can no longer reach Temporal's per-run signal limit and make it "
        "refuse the owner's *Not me*.",
        "2026-11-27",
    ),
    _patch(
        VERIFY_IN_BATCHES,
        "ApprovalWorkflow",
        date(2026, 12, 1),
        "The decisions waiting are verified together, up to 100 signed ones per local activity "
        "(`verify_decisions`) instead of one each (`verify_decision`, still registered), so "
        "thousands of forged signals cost a few workflow steps and markers, not one each.",
        "2026-11-27",
    ),
    _patch(
        STEP_UP_APPROVALS,
        "ApprovalWorkflow",
        date(2026, 11, 30),
        "An approval of a step-up event (`step_up: passkey`) counts only when the API signed it "
        "after checking the approver's passkey; a plain approval is refused and recorded.",
        "2026-11-30-decisions",
    ),
    _patch(
        GROUPED_QUESTIONS,
        "ApprovalWorkflow",
        date(2026, 12, 1),
        "An event whose rule groups (`group_window`) joins its burst's `GroupWorkflow` (an "
        "activity) and is asked by the group: no question or reminder of its own, the group's "
        "decision verified as signed for the group. Events recorded before it carry no window "
        "and ask no question about it.",
        "2026-12-01",
    ),
    _patch(
        POLL_ANY_SOURCE,
        "PollWorkflow",
        date(2026, 11, 27),
        "Polls call `poll_source` for any source instead of `poll_papertrail` (still "
        "registered as an alias for polls in flight).",
        "2026-11-27",
    ),
    _patch(
        BOUNDED_DIGEST,
        "ReminderDigestWorkflow",
        date(2026, 12, 1),
        "A digest takes at most 200 due reminders per batch and carries at most 200 over "
        "continue-as-new: a flood of forged `due` signals no longer makes the digest's activity "
        "input too large for Temporal, which failed the workflow's task for ever.",
        "2026-11-30",
    ),
    _patch(
        DIGEST_DRAINS_BACKLOG,
        "ReminderDigestWorkflow",
        date(2026, 12, 1),
        "A backlog of a full batch (200) is posted after a 1 s pause instead of the 5 s "
        "gathering window, and the run continues as new only once its backlog fits the "
        "carry-over (or at 10,000 history events, telling the rest to post their own); once "
        "`digest_after` reminders posted their own within a minute, later ones go into "
        "digests however few arrive together: thousands of reminders due together used to "
        "queue past the approvals' one-minute wait, or reach the digest one by one under "
        "load, and each then posted on its own at one message a second.",
        "2026-12-01-b",
    ),
    _patch(
        DIGEST_RETRIES_BATCH,
        "ReminderDigestWorkflow",
        date(2026, 12, 1),
        "A digest whose post fails (not refused for good) keeps its batch and retries it, "
        "leaving out the reminders whose approvals stop waiting (one minute) before the retry; "
        "those, unanswered, post their own. It used to tell the whole batch (up to 200) to post "
        "their own: more per-event posts queued at one a second, and the next digest's post "
        "waited behind them and failed too (issue 16).",
        "2026-11-30",
    ),
    _patch(
        EXPECTATION_APPROVALS,
        "ApprovalWorkflow",
        date(2026, 12, 1),
        "Before the first question, `find_expectation` asks for an active expectation that "
        "covers the event; a match approves it at once (`via: expectation`), with no DM.",
        "2026-12-01",
    ),
    _patch(
        LOCAL_LOOKUPS,
        "ApprovalWorkflow",
        date(2026, 12, 1),
        "The short lookups (`resolve_recipient`, `find_expectation`, `current_security_team`) "
        "run as local activities, in the workflow task that needs them: the first DM waits for "
        "one workflow task instead of three, and each lookup is a marker instead of an activity "
        "task and a workflow task more (issue 16).",
        "2026-12-01-b",
    ),
    _patch(
        REMINDERS_VIA_COLLECTORS,
        "ApprovalWorkflow",
        date(2026, 12, 1),
        "A due reminder is signalled to one of the task queue's four ReminderCollectorWorkflows "
        "(by the event id), which hand reminders on to the digest in one signal a second, "
        "instead of to the digest itself (still the fallback): at 10,000 pending, reminders "
        "due at 25-28 a second made Temporal fail the one digest's workflow tasks over and "
        "over (more than 100 events arriving while one ran; issue 16).",
        "2026-12-01-f",
    ),
    _patch(
        LOCAL_FIRST_QUESTION,
        "ApprovalWorkflow",
        date(2026, 12, 1),
        "The first question is posted by a local activity in the workflow task that decides to "
        "ask, instead of an activity of its own: one activity task and one workflow task fewer "
        "per event (issue 16's notification rate). A lost task leaves no trace of it, so it "
        "looks for its own earlier post before posting when its task is a retry or when it "
        "starts more than 5 s after its task (the rerun of a task the SDK completed once while "
        "the post ran); the patches the rest of that task may ask about are decided before it.",
        "2026-12-01-g",
    ),
    _patch(
        LOCAL_MESSAGE_UPDATES,
        "ApprovalWorkflow",
        date(2026, 12, 1),
        "Each message's update to show the outcome is a local activity in the workflow task that "
        "decided, instead of an activity of its own: an approval's click costs one workflow "
        "task, which also completes the workflow (issue 16's whole-life rate). Temporal refuses "
        "that completion when a signal came in meanwhile; the task's rerun updates the messages "
        "again with what it decided (an update shows the whole record: harmless twice).",
        "2026-12-01-h",
    ),
    _patch(
        APPROVAL_BASELINE,
        "ApprovalWorkflow",
        date(2026, 12, 1),
        "One marker, first thing in a run, stands for every ApprovalWorkflow patch before it "
        "(`APPROVAL_PATCHES`): a run that has it takes them all without a marker each. The SDK "
        "records each patch's marker with an upsert of the `TemporalChangeVersion` search "
        "attribute, so the 19 patches made 38 of an approved event's 60 history events, and as "
        "many visibility writes, in its first workflow task (issue 16's rates). Runs without it "
        "(older code) ask each patch as before. That deploy's runs are found with "
        "`TemporalChangeVersion = 'approval-baseline-2026-12-01'`.",
        "2026-12-01-i",
    ),
    _patch(
        APPROVAL_BASELINE_K,
        "ApprovalWorkflow",
        date(2026, 12, 1),
        "The baseline of this deploy: one marker, first thing in a new run, stands for every "
        "ApprovalWorkflow patch so far, `bounded-local-slack-calls` included "
        "(`APPROVAL_BASELINES`). Runs that began with `approval-baseline-2026-12-01` replay "
        "with it and ask `bounded-local-slack-calls` on their own.",
        "2026-12-01-j",
    ),
    _patch(
        BOUNDED_LOCAL_SLACK,
        "ApprovalWorkflow",
        date(2026, 12, 1),
        "A local Slack call (a lookup, the first question, a message's update) is tried in its "
        "workflow task for 15 s at most (four attempts), then goes on as an activity for the "
        "rest of its time: a local call's retries a minute apart each added a marker, a timer "
        "and a workflow task, about 8,600 events a day per call in a Slack outage, towards the "
        "51,200 a run may have; the expectation lookup gives up after three attempts (the SDK "
        "did not end it at its 30 s). And the messages' updates are local only when the "
        "deciding workflow task handled one click: its rerun after a click came in "
        "meanwhile (`UNHANDLED_COMMAND`) updates them by activity, so a flood of clicks cannot "
        "keep a decided run open by refusing one slow local completion after another.",
        "2026-12-01-j",
    ),
    _patch(
        DIGEST_ANSWERS_BY_ACTIVITY,
        "ReminderDigestWorkflow",
        date(2026, 12, 1),
        "The digest tells a batch's approvals their slots through one activity "
        "(`answer_slots`, the worker's client signals each) instead of a signal command each: "
        "two history events per reminder fewer, and no 200 results coming back at once while "
        "a workflow task runs (Temporal fails the task past 100).",
        "2026-12-01-f",
    ),
    _patch(
        REMINDERS_HANDED_OFF,
        "ApprovalWorkflow",
        date(2026, 12, 2),
        "A due reminder is handed to its collector by a local activity in the workflow task "
        "whose timer made it due, and the run does not wait for the digest's answer: one "
        "workflow task per reminder instead of three (the signal command's completion, the "
        "slot's answer). The digest answers such a reminder only when it did not post it, and "
        "the run then posts its own. At 10,000 pending the three tasks per reminder filled the "
        "worker's queue and reminders came minutes late.",
        "2026-12-01-k",
    ),
    _patch(
        DIGEST_ANSWERS_HANDED_OFF,
        "ReminderDigestWorkflow",
        date(2026, 12, 2),
        "Reminders handed off (`reminders-handed-off`) are not told they are in a digest (an "
        "answer would cost each approval a workflow task), and those a retried digest leaves "
        "out are told to post their own (they wait for nothing else). Asked only for a batch "
        "that holds such reminders, so a digest history from a worker that did not know them "
        "replays as it ran.",
        "2026-12-01-k",
    ),
    _patch(
        DIGEST_GATHERS_FROM_DUE,
        "ReminderDigestWorkflow",
        date(2026, 12, 2),
        "The gathering window ends `GATHER_WINDOW` after the oldest waiting reminder fell due, "
        "not after it reached the digest (at least a second on, at most the window): a reminder "
        "that took 3 s to arrive waited 5 s more, most of its 12 s lateness at 10,000 pending.",
        "2026-12-02",
    ),
    _patch(
        DIGEST_LISTS_ONCE,
        "ReminderDigestWorkflow",
        date(2026, 12, 2),
        "A second copy of a handed-off reminder (the same event and cycle) is dropped, not "
        "listed or told again: a hand-off retried into a collector's next run, or into a "
        "collector after its first attempt went to the digest.",
        "2026-12-02-b",
    ),
    _patch(
        GROUP_APPROVES_WHAT_IT_SHOWED,
        "GroupWorkflow",
        date(2026, 12, 2),
        "An approval of a group's question pressed on a message that listed fewer events than "
        "had joined is refused, traced, and the message drawn again: a login that joined a "
        "second before the click was approved by it unseen. Asked only for such a click.",
        "2026-12-02-c",
    ),
    _patch(
        APPROVAL_BASELINE_2,
        "ApprovalWorkflow",
        date(2026, 12, 2),
        "The baseline of this deploy: one marker for every ApprovalWorkflow patch so far, "
        "`reminders-handed-off` included. Runs that began with an older baseline replay with "
        "it and ask the patches it lacks on their own.",
        "2026-12-01-k",
    ),
)


def ledger_table() -> str:
    """The ledger as the README's Markdown table (a test keeps the README in step)."""
    rows = [
        "| patch id | workflow | added | why | histories that need it | retire when |",
        "|---|---|---|---|---|---|",
    ]
    rows += [
        f"| `{p.id}` | {p.workflow} | {p.added.isoformat()} | {p.why} | "
        f"`tests/histories/{p.needed_by}/` | {p.retire_when} |"
        for p in LEDGER
    ]
    return "\n".join(rows)

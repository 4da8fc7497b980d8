"""What workflows, their activities and their clients exchange: one module per workflow family.

Workflow code and activity code both import these modules (as `temporalio/samples-python` keeps one
shared module per sample): inputs and results, signal payloads, activity requests and replies,
the names a client starts, signals and queries a workflow by (services never import a workflow
class), and the activity option bundles (`ActivityConfig`) workflow code passes to
`workflow.execute_activity_method(..., **OPTIONS)`.

- `approval`: `ApprovalWorkflow` (the event record, decisions, Slack posts, decision
  verification).
- `reminders`: `ReminderDigestWorkflow` and its collectors (reminders that fall due together,
  posted as one).
- `polling`: `PollWorkflow` and `StaleReportWorkflow`, ingest counts.
- `reviews`: `UnrecognisedEventWorkflow` and `ReviewPacerWorkflow`.
- `conflict`: `ConflictWorkflow`.
- `paging`: the PagerDuty activities (escalation).
- `passkeys`: `PasskeyWorkflow` (step-up).
- `slack`: what every Slack activity shares (retries, call options, permanent errors).

Everything here is pure (pydantic models, enums, names, options): no I/O, safe to import into
Temporal's workflow sandbox. Payloads recorded in histories must keep decoding
(`tests/test_replay.py`): a renamed model or field keeps accepting its old JSON.
"""

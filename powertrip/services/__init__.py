"""Services: the code that talks to Temporal as a client, shared by the API, the CLI and the
activities (layer 4 of `docs/architecture.md`).

- `starts`: every workflow start (idempotent), update-with-start and schedule.
- `recognise`: source items → rules → start; one path for webhooks, polling and backfill (dry
  or not).
- `known`: which events are already recorded as the same action (visibility).
- `decisions`: the authority check, signing and the `decide` signal (Slack and the CLI).
- `views`, `hids`, `audit`: the record read side (list and show, the HIDS question, the audit
  export), from visibility and memos, with no worker.
- `backfill`: the backfill runner (chunks of records through `recognise`).
- `stepup`: passkey links and WebAuthn ceremonies against each user's `PasskeyWorkflow`.

Services reach workflows by the names in `powertrip.contracts`, never by importing a workflow
class: workflows and activities sit above them.
"""

"""`PasskeyWorkflow`: one long-lived workflow per Slack user holding their passkeys and their
one-time links (step-up and registration).

Why a workflow and not a table. Powertrip's only durable store is Temporal; a passkey store
beside it (SQLite on the API host, a Postgres table) would be one more thing to back up, secure,
migrate and keep consistent with the record, and the API runs without local state. A workflow per
user gives, with nothing added:
- **Atomic read-check-write.** Update handlers run one at a time per workflow, so "this link is
  unused, mark it used" and "the stored sign count is below this one, store it" cannot race, even
  with several API replicas: two posts of one link (a replay, a double click) are decided here,
  and only the first passes.
- **Validators** refuse an unknown, expired or used link, or a self-approved registration, before
  anything is written: a refused update leaves no event in the history.
- **An audit trail** of every change (the history), readable in the Web UI, and the workflow's
  time for expiry, so expiry is tested on the time-skipping server without sleeping.
- Readers that need no worker: the memo carries the credentials (never the links).
What it costs: an update needs a live worker (the page says "try again" when none answers), and
the history grows by a few events per update, so the run continues as new when Temporal
suggests it or after `updates_per_run` accepted updates. Per-user workflows also keep one user's
load from delaying another's.

Only the SHA-256 of a link's secret is stored (powertrip/services/stepup.py makes the links):
the history and the Web UI never show a usable link. The server's challenge for a ceremony is
stored when the page opens and cleared when the link is claimed, so each challenge is answered at
most once.

Deterministic: no I/O, no clock but `workflow.now()`, no randomness (the service brings the
secrets and challenges).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from powertrip.contracts.passkeys import (
        LINK_RETENTION_SECONDS,
        MAX_CREDENTIALS,
        MAX_OPEN_LINKS,
        MAX_PENDING_REGISTRATIONS,
        MEMO_KEY,
        PASSKEY_WORKFLOW,
        AddCredential,
        AssertionRecorded,
        CeremonyStart,
        ClaimedLink,
        ClaimLink,
        DecideRegistration,
        Enrollment,
        IssueLink,
        LinkIssued,
        LinkPurpose,
        LinkView,
        OpenLink,
        PasskeyAlert,
        PasskeyLink,
        PasskeyQuery,
        PasskeyStore,
        PasskeyUpdate,
        PendingRegistration,
        RecordAssertion,
        Refusal,
        is_slack_user,
    )


def _refuse(refusal: Refusal, message: str) -> ApplicationError:
    return ApplicationError(message, type=refusal.value, non_retryable=True)


@workflow.defn(name=PASSKEY_WORKFLOW)
class PasskeyWorkflow:
    """State: `PasskeyStore`. Updates (each with a validator):

    - `issue_link`: a new step-up or registration link (by the hash of its secret).
    - `open_link`: the page asks for a ceremony; stores the server's challenge.
    - `claim_link`: marks the link used and hands back the challenge (single use).
    - `record_assertion`: a step-up's result; checks and stores the sign count.
    - `add_credential`: a verified registration; the first passkey is active at once, any other
      waits for a security-team member.
    - `decide_registration`: a security-team member approves or rejects a pending passkey.

    Queries: `link` (a page's view of one link), `store` (everything).
    """

    @workflow.init
    def __init__(self, store: PasskeyStore) -> None:
        self.store = store
        self.accepted = 0
        self.new_link = False

    @workflow.run
    async def run(self, store: PasskeyStore) -> None:
        self._publish()
        while not self._time_to_continue():
            # Wake at the next expiry: a query answers with the time of the last workflow task,
            # so without this timer a page would show an expired link as still valid.
            self.new_link = False
            expiry = self._next_expiry()
            try:
                await workflow.wait_condition(
                    lambda: self.new_link or self._time_to_continue(),
                    timeout=expiry - workflow.now() if expiry else None,
                )
            except TimeoutError:
                pass
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._prune(workflow.now())
        workflow.continue_as_new(self.store)

    # Queries.

    @workflow.query(name=PasskeyQuery.LINK)
    def link(self, token_hash: str) -> LinkView | None:
        link = self.store.link(token_hash)
        if link is None:
            return None
        return LinkView(
            user=self.store.user,
            user_name=self.store.user_name,
            purpose=link.purpose,
            event=link.event,
            passkey=link.passkey,
            action=link.action,
            expires_at=link.expires_at,
            refusal=link.refusal(workflow.now(), link.purpose),
            passkeys=len(self.store.credentials),
        )

    @workflow.query(name=PasskeyQuery.STORE)
    def state(self) -> PasskeyStore:
        return self.store

    # Links.

    @workflow.update(name=PasskeyUpdate.ISSUE_LINK)
    def issue_link(self, request: IssueLink) -> LinkIssued:
        now = workflow.now()
        self._prune(now)
        link = PasskeyLink(
            token_hash=request.token_hash,
            purpose=request.purpose,
            event=request.event,
            passkey=request.passkey,
            action=request.action,
            replaces=request.replaces,
            issued_at=now,
            expires_at=now + timedelta(seconds=request.valid_seconds),
        )
        self.store.links.append(link)
        self.new_link = True
        self._changed()
        return LinkIssued(expires_at=link.expires_at)

    @issue_link.validator
    def _issue_link_ok(self, request: IssueLink) -> None:
        if self.store.link(request.token_hash) is not None:
            raise _refuse(Refusal.LINK_USED, "a link with this secret exists already")
        if request.purpose is LinkPurpose.STEP_UP and (
            (request.event is None) == (request.passkey is None) or not request.action
        ):
            raise ValueError("a step-up link names an event or a passkey, and an action")
        if request.replaces is not None and self.store.credential(request.replaces) is None:
            raise _refuse(Refusal.CREDENTIAL_NOT_REGISTERED, "no such passkey to replace")
        now = workflow.now()
        open_links = [k for k in self.store.links if k.claimed_at is None and k.expires_at > now]
        if len(open_links) >= MAX_OPEN_LINKS:
            raise _refuse(Refusal.TOO_MANY_LINKS, f"{MAX_OPEN_LINKS} links are open already")

    @workflow.update(name=PasskeyUpdate.OPEN_LINK)
    def open_link(self, request: OpenLink) -> CeremonyStart:
        link = self._usable(request.token_hash, request.purpose)
        link.challenge = request.challenge
        self._changed()
        return CeremonyStart(
            user=self.store.user,
            user_name=self.store.user_name,
            user_handle=self.store.user_handle,
            credentials=list(self.store.credentials),
        )

    @open_link.validator
    def _open_link_ok(self, request: OpenLink) -> None:
        self._usable(request.token_hash, request.purpose)
        if request.purpose is LinkPurpose.STEP_UP and not self.store.credentials:
            raise _refuse(Refusal.NO_PASSKEY, f"{self.store.user} has no passkey registered")

    @workflow.update(name=PasskeyUpdate.CLAIM_LINK)
    def claim_link(self, request: ClaimLink) -> ClaimedLink:
        link = self._usable(request.token_hash, request.purpose)
        challenge = link.challenge
        assert challenge is not None  # the validator checked
        link.claimed_at = workflow.now()
        link.challenge = None
        self._changed()
        return ClaimedLink(
            link=link,
            challenge=challenge,
            credentials=list(self.store.credentials),
            user_handle=self.store.user_handle,
        )

    @claim_link.validator
    def _claim_link_ok(self, request: ClaimLink) -> None:
        if self._usable(request.token_hash, request.purpose).challenge is None:
            raise _refuse(Refusal.LINK_NOT_OPENED, "this link's page never asked for a passkey")

    # Ceremony results.

    @workflow.update(name=PasskeyUpdate.RECORD_ASSERTION)
    def record_assertion(self, request: RecordAssertion) -> AssertionRecorded:
        now = workflow.now()
        link = self._claimed(request.token_hash, LinkPurpose.STEP_UP)
        credential = self.store.credential(request.credential_id) if request.credential_id else None
        refusal = request.refusal
        detail = request.detail
        if refusal is None and credential is None:
            refusal = Refusal.CREDENTIAL_NOT_REGISTERED
        if refusal is None and credential is not None:
            stored, given = credential.sign_count, request.sign_count
            # WebAuthn §6.1.1: a counter that does not grow (when either side counts at all)
            # means two authenticators hold this key: refuse, and keep the counter as it was.
            if (given or stored) and given <= stored:
                refusal = Refusal.SIGN_COUNT_REGRESSED
                detail = f"authenticator counter {given}, last seen {stored}"
            else:
                credential.sign_count = given
                credential.last_used_at = now
                credential.backed_up = request.backed_up
        link.outcome = refusal.value if refusal else "ok"
        if refusal is not None and refusal.alert:
            self.store.alerts.append(
                PasskeyAlert(
                    kind=refusal, at=now, credential_id=request.credential_id, detail=detail
                )
            )
        self._changed()
        return AssertionRecorded(
            refusal=refusal, credential=credential.ref if credential else None, at=now
        )

    @record_assertion.validator
    def _record_assertion_ok(self, request: RecordAssertion) -> None:
        self._claimed(request.token_hash, LinkPurpose.STEP_UP)

    @workflow.update(name=PasskeyUpdate.ADD_CREDENTIAL)
    def add_credential(self, request: AddCredential) -> Enrollment:
        now = workflow.now()
        link = self._claimed(request.token_hash, LinkPurpose.REGISTRATION)
        credential = request.credential.model_copy(update={"created_at": now})
        if not self.store.credentials:
            # The first passkey needs nobody's approval (there is nothing to step up with yet);
            # the caller announces it to the security channel.
            self.store.credentials.append(credential)
            link.outcome = "ok"
            self._changed()
            return Enrollment(status="active", first=True, credential=credential.ref)
        self.store.pending.append(
            PendingRegistration(
                pending_id=credential.credential_id,
                credential=credential,
                replaces=link.replaces,
                requested_at=now,
            )
        )
        link.outcome = "pending_approval"
        self._changed()
        return Enrollment(
            status="pending_approval",
            credential=credential.ref,
            replaced=link.replaces,
            pending_id=credential.credential_id,
        )

    @add_credential.validator
    def _add_credential_ok(self, request: AddCredential) -> None:
        self._claimed(request.token_hash, LinkPurpose.REGISTRATION)
        new_id = request.credential.credential_id
        if self.store.credential(new_id) or any(p.pending_id == new_id for p in self.store.pending):
            raise _refuse(Refusal.DUPLICATE_CREDENTIAL, "this passkey is registered already")
        if len(self.store.credentials) >= MAX_CREDENTIALS:
            raise _refuse(Refusal.TOO_MANY_CREDENTIALS, f"at most {MAX_CREDENTIALS} passkeys")
        if self.store.credentials and len(self.store.pending) >= MAX_PENDING_REGISTRATIONS:
            raise _refuse(
                Refusal.TOO_MANY_CREDENTIALS,
                f"{MAX_PENDING_REGISTRATIONS} passkeys are waiting for approval already",
            )

    @workflow.update(name=PasskeyUpdate.DECIDE_REGISTRATION)
    def decide_registration(self, request: DecideRegistration) -> Enrollment:
        pending = self._pending(request.pending_id)
        self.store.pending.remove(pending)
        credential = pending.credential
        if not request.approve:
            self._changed()
            return Enrollment(status="rejected", credential=credential.ref)
        replaced = None
        if pending.replaces is not None:
            old = self.store.credential(pending.replaces)
            if old is not None:
                self.store.credentials.remove(old)
                replaced = old.credential_id
        self.store.credentials.append(
            credential.model_copy(
                update={
                    "approved_by": request.approver,
                    "approved_with": request.approver_credential,
                }
            )
        )
        self._changed()
        return Enrollment(status="active", credential=credential.ref, replaced=replaced)

    @decide_registration.validator
    def _decide_registration_ok(self, request: DecideRegistration) -> None:
        self._pending(request.pending_id)
        if not is_slack_user(request.approver):
            raise ValueError(f"not a Slack user id: {request.approver!r}")
        if request.approver == self.store.user:
            raise _refuse(Refusal.SELF_APPROVAL, "a passkey is approved by someone else")

    # Helpers (shared by validators and handlers, which must agree).

    def _usable(self, token_hash: str, purpose: LinkPurpose) -> PasskeyLink:
        link = self.store.link(token_hash)
        if link is None:
            raise _refuse(Refusal.LINK_UNKNOWN, "no such link")
        refusal = link.refusal(workflow.now(), purpose)
        if refusal is not None:
            raise _refuse(refusal, f"link refused: {refusal.value}")
        return link

    def _claimed(self, token_hash: str, purpose: LinkPurpose) -> PasskeyLink:
        link = self.store.link(token_hash)
        if link is None or link.purpose is not purpose:
            raise _refuse(Refusal.LINK_UNKNOWN, "no such link")
        if link.claimed_at is None or link.outcome is not None:
            raise _refuse(Refusal.LINK_USED, "this link has no ceremony waiting for its result")
        return link

    def _pending(self, pending_id: str) -> PendingRegistration:
        for pending in self.store.pending:
            if pending.pending_id == pending_id:
                return pending
        raise _refuse(Refusal.PENDING_UNKNOWN, "no such passkey waiting for approval")

    def _time_to_continue(self) -> bool:
        return (
            workflow.info().is_continue_as_new_suggested()
            or self.accepted >= self.store.updates_per_run
        )

    def _next_expiry(self) -> datetime | None:
        now = workflow.now()
        pending = [k.expires_at for k in self.store.links if k.claimed_at is None]
        return min((at for at in pending if at > now), default=None)

    def _prune(self, now: datetime) -> None:
        keep_after = now - timedelta(seconds=LINK_RETENTION_SECONDS)
        self.store.links = [k for k in self.store.links if k.expires_at > keep_after]

    def _changed(self) -> None:
        self.accepted += 1
        self._publish()

    def _publish(self) -> None:
        # Readers (the API's passkey list, stage 2's App Home) need no worker: the memo carries
        # the credentials and pending registrations, never the links.
        workflow.upsert_memo({MEMO_KEY: self.store.model_copy(update={"links": []})})

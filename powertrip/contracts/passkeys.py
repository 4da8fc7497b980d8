"""Passkeys and one-time links: what the per-user `PasskeyWorkflow` (workflows/passkeys.py) and
the step-up service (powertrip/services/stepup.py) exchange, and the outcome a step-up hands to
the decision path.

Domain layer (docs/architecture.md, layer 5): plain pydantic models and names, no I/O. The
service talks to the workflow by the names below (`PASSKEY_WORKFLOW`, `PasskeyUpdate`,
`PasskeyQuery`), never by importing the workflow class. Bytes (credential ids, public keys,
challenges, user handles) travel as unpadded base64url strings, as WebAuthn's JSON does.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from powertrip.contracts.slack import NoticeMessage
from powertrip.models import CredentialRef, SecurityEvent, StepUpMethod

PASSKEY_WORKFLOW = "PasskeyWorkflow"
MEMO_KEY = "passkeys"

# Bounds on what one user's workflow holds, so clicking Approve in a loop cannot grow it forever.
MAX_OPEN_LINKS = 20
MAX_PENDING_REGISTRATIONS = 5
MAX_CREDENTIALS = 20
# A used or expired link is kept this long past its expiry, so opening it says "used"/"expired"
# rather than "unknown".
LINK_RETENTION_SECONDS = 24 * 3600

_SLACK_USER = re.compile(r"^[A-Z0-9]{2,40}$")


class PasskeyUpdate(StrEnum):
    """Temporal update names of `PasskeyWorkflow`; each has a validator that refuses without a
    trace in the history."""

    ISSUE_LINK = "issue_link"
    OPEN_LINK = "open_link"
    CLAIM_LINK = "claim_link"
    RECORD_ASSERTION = "record_assertion"
    ADD_CREDENTIAL = "add_credential"
    DECIDE_REGISTRATION = "decide_registration"


class PasskeyQuery(StrEnum):
    LINK = "link"
    STORE = "store"


def is_slack_user(user: str) -> bool:
    """A Slack user id (`U…`/`W…`): the only thing a passkey store is ever keyed by."""
    return bool(_SLACK_USER.match(user))


def passkey_workflow_id(user: str) -> str:
    """`powertrip-passkeys-<Slack user id>`; ValueError for anything that is not a Slack id."""
    if not is_slack_user(user):
        raise ValueError(f"not a Slack user id: {user!r}")
    return f"powertrip-passkeys-{user}"


class LinkPurpose(StrEnum):
    STEP_UP = "step_up"
    """Approve one event, with a passkey assertion."""
    REGISTRATION = "registration"
    """Register a passkey for the link's user."""


class Refusal(StrEnum):
    """Why a link approved or registered nothing. The value is also the `ApplicationError` type
    of a refused update, and what the decision path records in the event's timeline."""

    LINK_UNKNOWN = "link_unknown"
    LINK_EXPIRED = "link_expired"
    LINK_USED = "link_used"
    LINK_WRONG_PURPOSE = "link_wrong_purpose"
    LINK_NOT_OPENED = "link_not_opened"
    TOO_MANY_LINKS = "too_many_links"
    NO_PASSKEY = "no_passkey"
    CREDENTIAL_NOT_REGISTERED = "credential_not_registered"
    """The assertion came from a passkey that is not one of the link user's (someone else's)."""
    USER_VERIFICATION_MISSING = "user_verification_missing"
    INVALID_RESPONSE = "invalid_response"
    """The browser's answer does not verify (signature, challenge, origin, RP id, ...)."""
    SIGN_COUNT_REGRESSED = "sign_count_regressed"
    """The authenticator's counter went backwards: a possibly cloned authenticator. Alert."""
    DUPLICATE_CREDENTIAL = "duplicate_credential"
    TOO_MANY_CREDENTIALS = "too_many_credentials"
    PENDING_UNKNOWN = "pending_unknown"
    SELF_APPROVAL = "self_approval"
    STORE_CLOSED = "store_closed"
    """The user's passkey workflow was ended (terminated by an operator): refused until the
    security team restores it, never silently replaced by an empty one."""
    TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"
    """Temporal or the worker did not answer; nothing changed, try again."""

    @property
    def alert(self) -> bool:
        """The security team should hear of it at once, not only read it in a timeline."""
        return self in (Refusal.SIGN_COUNT_REGRESSED, Refusal.CREDENTIAL_NOT_REGISTERED)


class PasskeyRefused(Exception):
    """A link, ceremony or registration request that did nothing. `refusal` says why;
    `credential_id` names the passkey that was tried, when that much could be read."""

    def __init__(
        self, refusal: Refusal, detail: str | None = None, credential_id: str | None = None
    ) -> None:
        super().__init__(f"{refusal.value}: {detail}" if detail else refusal.value)
        self.refusal = refusal
        self.detail = detail
        self.credential_id = credential_id


class EventSummary(BaseModel):
    """What a step-up page shows about the event being approved: bound into the link when it is
    issued, so the page needs nothing else."""

    event_id: str
    rule_id: str
    rule_title: str
    action: str
    actor: str
    host: str | None = None
    address: str | None = None
    port: int | None = None
    occurred_at: datetime
    shown: int | None = Field(
        default=None,
        description="A group's question: how many events its message listed when *Approve* "
        "was pressed (`Click.shown`).",
    )

    @classmethod
    def of(cls, event: SecurityEvent) -> EventSummary:
        return cls(
            event_id=event.event_id,
            rule_id=event.rule_id,
            rule_title=event.rule_title,
            action=event.action,
            actor=event.actor,
            host=event.host,
            address=event.address,
            port=event.port,
            occurred_at=event.occurred_at,
        )


class PasskeyToApprove(BaseModel):
    """What a security-team member's step-up link approves instead of an event: another user's
    pending passkey (bound into the link when it is issued, like `EventSummary`)."""

    user: str = Field(description="Slack user id of the passkey's owner.")
    user_name: str | None = None
    credential: CredentialRef = Field(description="The pending passkey (its id is `pending_id`).")
    replaces: str | None = Field(default=None, description="Credential id it replaces, if any.")
    notice_id: str | None = Field(
        default=None, description="The security-channel notice that asked for the approval."
    )


class PasskeyCredential(BaseModel):
    """One registered passkey (a WebAuthn public-key credential)."""

    credential_id: str = Field(description="base64url credential id.")
    public_key: str = Field(description="base64url COSE public key.")
    sign_count: int = Field(ge=0, description="The authenticator's counter at its last use.")
    transports: list[str] = Field(default_factory=list, description="e.g. internal, usb, hybrid.")
    label: str = Field(max_length=64, description="The owner's name for it, e.g. `MacBook`.")
    created_at: datetime
    aaguid: str | None = None
    backed_up: bool = Field(default=False, description="A synced passkey (e.g. iCloud Keychain).")
    last_used_at: datetime | None = None
    approved_by: str | None = Field(
        default=None, description="Security-team member who approved it; None for a first passkey."
    )
    approved_with: CredentialRef | None = Field(
        default=None, description="The passkey the approver stepped up with, if they did."
    )

    @property
    def ref(self) -> CredentialRef:
        return CredentialRef(credential_id=self.credential_id, label=self.label)


class PendingRegistration(BaseModel):
    """A passkey registered by a user who already has one: inactive until a security-team member
    approves it (a stolen Slack session must not add the attacker's own passkey)."""

    pending_id: str = Field(description="The new credential's id.")
    credential: PasskeyCredential
    replaces: str | None = Field(default=None, description="Credential id it replaces, if any.")
    requested_at: datetime


class PasskeyLink(BaseModel):
    """A one-time link as the workflow keeps it: only the SHA-256 of its secret is stored, so the
    workflow history and the Web UI never show a usable link."""

    token_hash: str
    purpose: LinkPurpose
    event: EventSummary | None = Field(default=None, description="Step-up: what is approved.")
    passkey: PasskeyToApprove | None = Field(
        default=None, description="Step-up by a security-team member: the passkey approved."
    )
    action: Literal["approve"] | None = None
    replaces: str | None = Field(default=None, description="Registration: credential replaced.")
    issued_at: datetime
    expires_at: datetime
    challenge: str | None = Field(default=None, description="base64url; set when the page opens.")
    claimed_at: datetime | None = None
    outcome: str | None = Field(default=None, description="`ok` or a Refusal value.")

    def refusal(self, now: datetime, purpose: LinkPurpose) -> Refusal | None:
        """Why this link cannot start a ceremony now; None when it can."""
        if self.purpose is not purpose:
            return Refusal.LINK_WRONG_PURPOSE
        if self.claimed_at is not None:
            return Refusal.LINK_USED
        if now >= self.expires_at:
            return Refusal.LINK_EXPIRED
        return None


class PasskeyAlert(BaseModel):
    """Something the security team must hear of (a sign-count regression)."""

    kind: Refusal
    at: datetime
    credential_id: str | None = None
    detail: str | None = None


class PasskeyStore(BaseModel):
    """The whole state of one user's `PasskeyWorkflow`; its input, carried by continue-as-new."""

    user: str = Field(description="Slack user id.")
    user_name: str = Field(description="Shown by the authenticator (WebAuthn user.name).")
    user_handle: str = Field(description="base64url WebAuthn user.id: random, never the Slack id.")
    credentials: list[PasskeyCredential] = Field(default_factory=list)
    pending: list[PendingRegistration] = Field(default_factory=list)
    links: list[PasskeyLink] = Field(default_factory=list)
    alerts: list[PasskeyAlert] = Field(default_factory=list)
    updates_per_run: int = Field(
        default=500, gt=0, description="Continue-as-new after this many accepted updates."
    )

    def credential(self, credential_id: str) -> PasskeyCredential | None:
        return next((c for c in self.credentials if c.credential_id == credential_id), None)

    def link(self, token_hash: str) -> PasskeyLink | None:
        return next((k for k in self.links if k.token_hash == token_hash), None)


# Update inputs and results.


class IssueLink(BaseModel):
    token_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    purpose: LinkPurpose
    valid_seconds: float = Field(gt=0)
    event: EventSummary | None = None
    passkey: PasskeyToApprove | None = None
    action: Literal["approve"] | None = None
    replaces: str | None = None


class LinkIssued(BaseModel):
    expires_at: datetime


class LinkView(BaseModel):
    """What a page shows before any ceremony (the `link` query)."""

    user: str
    user_name: str
    purpose: LinkPurpose
    event: EventSummary | None
    passkey: PasskeyToApprove | None = None
    action: str | None
    expires_at: datetime
    refusal: Refusal | None = Field(description="Why it cannot be used now; None: usable.")
    passkeys: int = Field(description="How many active passkeys the user has.")


class OpenLink(BaseModel):
    token_hash: str
    purpose: LinkPurpose
    challenge: str = Field(min_length=16, description="base64url, fresh from the server.")


class CeremonyStart(BaseModel):
    user: str
    user_name: str
    user_handle: str
    credentials: list[PasskeyCredential] = Field(
        description="Active passkeys (allowCredentials / excludeCredentials)."
    )


class ClaimLink(BaseModel):
    token_hash: str
    purpose: LinkPurpose


class ClaimedLink(BaseModel):
    """A link just marked used (single use is decided here, before any verification)."""

    link: PasskeyLink
    challenge: str
    credentials: list[PasskeyCredential]
    user_handle: str


class RecordAssertion(BaseModel):
    token_hash: str
    credential_id: str | None = None
    sign_count: int = Field(default=0, ge=0)
    backed_up: bool = False
    refusal: Refusal | None = Field(
        default=None, description="Set when the service already refused the assertion."
    )
    detail: str | None = None


class AssertionRecorded(BaseModel):
    refusal: Refusal | None
    credential: CredentialRef | None = None
    at: datetime


class AddCredential(BaseModel):
    token_hash: str
    credential: PasskeyCredential


class Enrollment(BaseModel):
    """What happened to a newly registered passkey."""

    status: Literal["active", "pending_approval", "rejected"]
    first: bool = Field(
        default=False, description="The user's first passkey: announce it to the security channel."
    )
    credential: CredentialRef
    replaced: str | None = None
    pending_id: str | None = None


class DecideRegistration(BaseModel):
    pending_id: str
    approver: str = Field(description="Slack user id of the security-team member.")
    approve: bool
    approver_credential: CredentialRef | None = Field(
        default=None, description="The approver's own step-up, when they did one."
    )


# What a step-up comes to: the value the decision path carries.


class StepUpVerified(BaseModel):
    """A passkey assertion with user verification, by one of the link user's own passkeys, on an
    unexpired link used for the first time. The decision path records `step_up: passkey` and the
    credential."""

    outcome: Literal["verified"] = "verified"
    event_id: str | None = Field(default=None, description="The event approved, if one is.")
    shown: int | None = Field(
        default=None, description="A group's question: how many events the link approves."
    )
    passkey: PasskeyToApprove | None = Field(
        default=None, description="The pending passkey a security-team member approves, if one is."
    )
    user: str = Field(description="Slack user id the link was issued to (and whose passkey it is).")
    action: Literal["approve"] = "approve"
    step_up: StepUpMethod = StepUpMethod.PASSKEY
    credential: CredentialRef
    at: datetime = Field(description="When the credential workflow accepted the assertion.")


class StepUpRefused(BaseModel):
    """A step-up that approves nothing, with the reason to record in the event's timeline."""

    outcome: Literal["refused"] = "refused"
    refusal: Refusal
    detail: str | None = None
    event_id: str | None = Field(default=None, description="None when the link is unknown.")
    user: str | None = None
    credential: CredentialRef | None = Field(
        default=None, description="The passkey that was tried, when it is one of the user's."
    )

    @property
    def alert(self) -> bool:
        return self.refusal.alert

    def timeline_detail(self) -> str:
        """One line for the event's timeline, e.g. `step-up refused: link_used`."""
        used = f" with passkey {self.credential.label!r}" if self.credential else ""
        why = f" ({self.detail})" if self.detail else ""
        return f"step-up refused{used}: {self.refusal.value}{why}"


StepUpOutcome = StepUpVerified | StepUpRefused


# The security channel hears of passkeys: `PasskeyNoticeWorkflow` (workflows/passkey_notice.py).

PASSKEY_NOTICE_WORKFLOW = "PasskeyNoticeWorkflow"
PASSKEY_DECIDED_SIGNAL = "passkey_decided"
"""A `PasskeyDecided`: the pending passkey a notice asked about was approved or rejected."""
NOTICE_MEMO = "notice"
"""Memo key of a notice's `NoticeState` (the API checks a button click against it)."""
PENDING_NOTICE_DAYS = 30
"""How long a pending passkey's notice waits to show the decision; its buttons work after."""


class NoticeKind(StrEnum):
    FIRST = "first_passkey"
    """A user's first passkey: active at once (there was nothing to step up with), announced."""
    PENDING = "pending_passkey"
    """Another passkey: inactive until a security-team member approves it (buttons)."""
    ALERT = "passkey_alert"
    """A step-up refused for a reason the team must hear of at once (`Refusal.alert`)."""


class PasskeyNotice(BaseModel):
    """One security-channel message about a user's passkeys."""

    kind: NoticeKind
    user: str = Field(description="Slack user id whose passkey it is.")
    user_name: str | None = None
    credential: CredentialRef | None = None
    replaces: str | None = Field(default=None, description="Pending: the credential it replaces.")
    refusal: Refusal | None = Field(default=None, description="Alert: what was refused.")
    detail: str | None = None
    event_id: str | None = Field(default=None, description="Alert: the event of the step-up.")
    link_hash: str | None = Field(
        default=None, description="Alert: the SHA-256 of the refused link (never the link)."
    )
    at: datetime

    @property
    def passkey(self) -> PasskeyToApprove | None:
        """Pending: what a security-team member's step-up link approves."""
        if self.kind is not NoticeKind.PENDING or self.credential is None:
            return None
        return PasskeyToApprove(
            user=self.user,
            user_name=self.user_name,
            credential=self.credential,
            replaces=self.replaces,
            notice_id=passkey_notice_id(self),
        )


class PasskeyDecided(BaseModel):
    """A security-team member approved or rejected the pending passkey of a notice."""

    approved: bool
    by: str = Field(description="Slack user id of the security-team member.")
    name: str | None = None
    with_credential: CredentialRef | None = Field(
        default=None, description="The approver's own step-up, when they did one."
    )
    at: datetime


class NoticeState(BaseModel):
    """`PasskeyNoticeWorkflow`'s state, memo (`NOTICE_MEMO`) and result."""

    notice: PasskeyNotice
    security_team: list[str] = Field(
        default_factory=list, description="Pending: who may decide (the team when it was asked)."
    )
    message: NoticeMessage | None = None
    decided: PasskeyDecided | None = None


def passkey_notice_id(notice: PasskeyNotice) -> str:
    """One notice per user and passkey (first or pending), or per refused link (alert): a
    retried announcement posts once."""
    key = notice.credential.credential_id if notice.credential else ""
    if notice.kind is NoticeKind.ALERT:
        key = f"{notice.link_hash}|{key}"
    digest = hashlib.sha256(f"{notice.kind.value}|{key}".encode()).hexdigest()[:16]
    return f"powertrip-passkey-notice-{notice.user}-{digest}"

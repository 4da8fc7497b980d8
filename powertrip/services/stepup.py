"""Step-up approvals with passkeys: one-time links, the WebAuthn ceremonies behind them, and the
verified outcome the decision path carries.

Service layer (docs/architecture.md, layer 4): talks to Temporal as a client and reaches each
user's `PasskeyWorkflow` by the names in `powertrip.contracts.passkeys`, never by importing the
workflow.

Links. A link is `<Slack user id>.<secret>`: the user id says which store to ask (it is not
secret: Slack shows it to every member), the secret is 256 random bits. The store keeps only the
SHA-256 of the whole token. What a link may do (approve *this* event, for *this* user, until
*then*, once) lives in the user's workflow, not in the token:
- single use is decided by the `claim_link` update before any verification, so of two posts of
  one link only the first gets a challenge to answer, even across API replicas;
- expiry is the workflow's clock (`workflow.now()`), one clock for every replica, and one the
  time-skipping test server can move.

The one function the decision path calls is `complete_step_up`: it returns `StepUpVerified`
(`step_up: passkey` with the credential used) or `StepUpRefused` (the reason to record).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from powertrip.config import PowertripConfig
from powertrip.contracts.passkeys import (
    MEMO_KEY,
    NOTICE_MEMO,
    PASSKEY_DECIDED_SIGNAL,
    AddCredential,
    AssertionRecorded,
    CeremonyStart,
    ClaimedLink,
    ClaimLink,
    DecideRegistration,
    Enrollment,
    EventSummary,
    IssueLink,
    LinkIssued,
    LinkPurpose,
    LinkView,
    NoticeKind,
    NoticeState,
    OpenLink,
    PasskeyDecided,
    PasskeyNotice,
    PasskeyQuery,
    PasskeyRefused,
    PasskeyStore,
    PasskeyToApprove,
    PasskeyUpdate,
    RecordAssertion,
    Refusal,
    StepUpOutcome,
    StepUpRefused,
    StepUpVerified,
    is_slack_user,
    passkey_workflow_id,
)
from powertrip.messages import registration_reply
from powertrip.models import CredentialRef, SecurityEvent
from powertrip.relying_party import RelyingParty, new_challenge
from powertrip.services.starts import announce_passkey, issue_link_with_start
from powertrip.settings import Settings, SettingsError

# A worker that does not answer an update within this long: the page says "try again".
STORE_TIMEOUT_SECONDS = 10.0
_TOKEN = re.compile(r"^([A-Z0-9]{2,40})\.([A-Za-z0-9_-]{43})$")

R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class IssuedLink:
    """A link to send to its user (only to them: it is the secret)."""

    url: str
    expires_at: datetime


@dataclass(frozen=True)
class Link:
    """A token taken apart: whose store to ask, and what it stores."""

    user: str
    token_hash: str

    @classmethod
    def parse(cls, token: str) -> Link:
        """PasskeyRefused(LINK_UNKNOWN) for anything that is not a token we could have made."""
        match = _TOKEN.match(token)
        if match is None:
            raise PasskeyRefused(Refusal.LINK_UNKNOWN, "not a Powertrip link")
        return cls(user=match.group(1), token_hash=_hash(token))


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def relying_party(settings: Settings) -> RelyingParty:
    """The RP for `POWERTRIP_PUBLIC_URL`; SettingsError when step-up is not configured."""
    if settings.public_url is None:
        raise SettingsError(
            "step-up needs POWERTRIP_PUBLIC_URL: the https address people's browsers use"
        )
    return RelyingParty.for_public_url(settings.public_url)


def check_step_up_setup(config: PowertripConfig, settings: Settings) -> None:
    """At the API's start: rules that need a step-up need `POWERTRIP_PUBLIC_URL` for the pages
    (else *Approve* could never approve their events). SettingsError naming the rules."""
    rules = [rule.id for rule in config.rules if rule.enabled and rule.step_up is not None]
    if rules and settings.public_url is None:
        raise SettingsError(
            f"rules {', '.join(rules)} need a step-up (`step_up` / `step_up_rules`): set "
            "POWERTRIP_PUBLIC_URL to the https address people's browsers use for the API"
        )


def _store(client: Client, user: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(passkey_workflow_id(user))


def _refusal_of(exc: BaseException) -> Refusal | None:
    cause = exc.__cause__ if isinstance(exc, WorkflowUpdateFailedError) else exc
    if isinstance(cause, ApplicationError) and cause.type:
        try:
            return Refusal(cause.type)
        except ValueError:
            return None
    return None


async def _call(awaitable: Any) -> Any:
    """One request to a store, with Temporal's answers turned into PasskeyRefused."""
    try:
        return await asyncio.wait_for(awaitable, STORE_TIMEOUT_SECONDS)
    except WorkflowUpdateFailedError as exc:
        refusal = _refusal_of(exc)
        if refusal is None:
            raise
        raise PasskeyRefused(refusal, str(exc.__cause__)) from exc
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise PasskeyRefused(Refusal.LINK_UNKNOWN, "no passkey store for this user") from exc
        if exc.status is RPCStatusCode.ALREADY_EXISTS:
            raise PasskeyRefused(
                Refusal.STORE_CLOSED, "this user's passkey store was closed; ask the security team"
            ) from exc
        raise PasskeyRefused(Refusal.TEMPORARILY_UNAVAILABLE, exc.message) from exc
    except (TimeoutError, WorkflowQueryFailedError) as exc:
        raise PasskeyRefused(
            Refusal.TEMPORARILY_UNAVAILABLE, "the passkey store did not answer"
        ) from exc


async def _update(
    client: Client, user: str, name: PasskeyUpdate, arg: BaseModel, result: type[R]
) -> R:
    value: R = await _call(_store(client, user).execute_update(name, arg, result_type=result))
    return value


async def _claim(client: Client, link: Link, purpose: LinkPurpose) -> ClaimedLink:
    """Use the link up (single use is decided here, before anything is verified) and get the
    challenge its page was given."""
    return await _update(
        client,
        link.user,
        PasskeyUpdate.CLAIM_LINK,
        ClaimLink(token_hash=link.token_hash, purpose=purpose),
        ClaimedLink,
    )


# Issuing links (stage 2: the decisions module and the `/powertrip passkey` command call these);
# the store is started, if need be, by `services.starts.issue_link_with_start`.


async def _issue(
    client: Client,
    settings: Settings,
    *,
    user: str,
    purpose: LinkPurpose,
    user_name: str | None = None,
    **fields: Any,
) -> IssuedLink:
    """A new link of `purpose` for `user`, with `fields` of `IssueLink` (what it is for)."""
    if settings.public_url is None:
        relying_party(settings)  # raises the SettingsError that names the setting
    token = _new_token(user)
    step_up = purpose is LinkPurpose.STEP_UP
    request = IssueLink(
        token_hash=_hash(token),
        purpose=purpose,
        valid_seconds=settings.step_up_link_seconds if step_up else settings.passkey_link_seconds,
        **fields,
    )
    store = PasskeyStore(
        user=user,
        user_name=user_name or user,
        user_handle=bytes_to_base64url(secrets.token_bytes(32)),
    )
    issued: LinkIssued = await _call(
        issue_link_with_start(client, settings.task_queue, store, request)
    )
    path = "/verify" if step_up else "/passkeys/register"
    return IssuedLink(url=f"{settings.public_url}{path}/{token}", expires_at=issued.expires_at)


def _new_token(user: str) -> str:
    if not is_slack_user(user):
        raise ValueError(f"not a Slack user id: {user!r}")
    return f"{user}.{secrets.token_urlsafe(32)}"


async def issue_step_up_link(
    client: Client,
    settings: Settings,
    *,
    user: str,
    event: SecurityEvent,
    shown: int | None = None,
) -> IssuedLink:
    """A link for `user` (Slack id) to approve `event` with a passkey, valid for
    `POWERTRIP_STEP_UP_LINK_SECONDS`; `shown`: for a group's question, how many events the
    message listed when *Approve* was pressed (bound into the link, so the approval covers no
    more). The caller has checked that `user` may approve it. Raises PasskeyRefused
    (TOO_MANY_LINKS, TEMPORARILY_UNAVAILABLE), SettingsError."""
    return await _issue(
        client,
        settings,
        user=user,
        purpose=LinkPurpose.STEP_UP,
        event=EventSummary.of(event).model_copy(update={"shown": shown}),
        action="approve",
    )


async def issue_passkey_approval_link(
    client: Client, settings: Settings, *, approver: str, passkey: PasskeyToApprove
) -> IssuedLink:
    """A step-up link for security-team member `approver` (Slack id) to approve `passkey`,
    another user's pending passkey, with their own passkey; valid like an event's step-up link.
    The caller has checked that `approver` is on the team and has a passkey. Raises
    PasskeyRefused, SettingsError."""
    return await _issue(
        client,
        settings,
        user=approver,
        purpose=LinkPurpose.STEP_UP,
        passkey=passkey,
        action="approve",
    )


async def issue_registration_link(
    client: Client,
    settings: Settings,
    *,
    user: str,
    user_name: str | None = None,
    replaces: str | None = None,
) -> IssuedLink:
    """A link for `user` to register a passkey (`user_name`: what their authenticator shows,
    e.g. their Slack handle; set on the first link only), valid for
    `POWERTRIP_PASSKEY_LINK_SECONDS`. `replaces`: the credential id of a passkey the new one
    will replace once a security-team member approves."""
    return await _issue(
        client,
        settings,
        user=user,
        purpose=LinkPurpose.REGISTRATION,
        user_name=user_name,
        replaces=replaces,
    )


# The pages.


async def link_view(client: Client, token: str) -> LinkView:
    """What a page shows for `token`. Raises PasskeyRefused(LINK_UNKNOWN or
    TEMPORARILY_UNAVAILABLE); a known link's own problem (expired, used) is `view.refusal`."""
    link = Link.parse(token)
    view: LinkView | None = await _call(
        _store(client, link.user).query(PasskeyQuery.LINK, link.token_hash, result_type=LinkView)
    )
    if view is None:
        raise PasskeyRefused(Refusal.LINK_UNKNOWN, "no such link")
    return view


async def begin_ceremony(client: Client, rp: RelyingParty, token: str, purpose: LinkPurpose) -> str:
    """Options JSON for the page's `navigator.credentials.get` (step-up) or `.create`
    (registration), with a fresh challenge stored in the user's workflow. Raises PasskeyRefused
    (link problems, NO_PASSKEY for a step-up by a user without one)."""
    link = Link.parse(token)
    challenge = new_challenge()
    start = await _update(
        client,
        link.user,
        PasskeyUpdate.OPEN_LINK,
        OpenLink(
            token_hash=link.token_hash, purpose=purpose, challenge=bytes_to_base64url(challenge)
        ),
        CeremonyStart,
    )
    if purpose is LinkPurpose.STEP_UP:
        return rp.authentication_options(challenge=challenge, credentials=start.credentials)
    return rp.registration_options(
        challenge=challenge,
        user_handle=start.user_handle,
        user_name=start.user_name,
        existing=start.credentials,
    )


async def complete_step_up(
    client: Client, rp: RelyingParty, token: str, response: str | dict[str, Any]
) -> StepUpOutcome:
    """Verify the page's assertion for a step-up link: **the one call the decision path makes**.

    `response`: the browser's `PublicKeyCredential.toJSON()` from `navigator.credentials.get`.
    Returns StepUpVerified (deliver the approval with `step_up: passkey` and the credential) or
    StepUpRefused (approve nothing; record `timeline_detail()`; alert when `.alert`). Never
    raises for a bad link or response. The link is used up by the first post, whatever the
    result: a failed attempt needs a new link (press Approve again).
    """
    try:
        link = Link.parse(token)
        view = await link_view(client, token)
    except PasskeyRefused as exc:
        return StepUpRefused(refusal=exc.refusal, detail=exc.detail)
    try:
        return await _step_up(client, rp, link, response)
    except PasskeyRefused as exc:
        return StepUpRefused(
            refusal=exc.refusal,
            detail=exc.detail,
            event_id=view.event.event_id if view.event else None,
            user=link.user,
        )


async def _step_up(
    client: Client, rp: RelyingParty, link: Link, response: str | dict[str, Any]
) -> StepUpOutcome:
    claimed = await _claim(client, link, LinkPurpose.STEP_UP)
    try:
        verified = rp.verify_assertion(
            response,
            challenge=base64url_to_bytes(claimed.challenge),
            credentials=claimed.credentials,
            user_handle=claimed.user_handle,
        )
        record = RecordAssertion(
            token_hash=link.token_hash,
            credential_id=verified.credential.credential_id,
            sign_count=verified.sign_count,
            backed_up=verified.backed_up,
        )
    except PasskeyRefused as exc:
        record = RecordAssertion(
            token_hash=link.token_hash,
            credential_id=exc.credential_id,
            refusal=exc.refusal,
            detail=exc.detail,
        )
    recorded = await _update(
        client, link.user, PasskeyUpdate.RECORD_ASSERTION, record, AssertionRecorded
    )
    event, passkey = claimed.link.event, claimed.link.passkey
    if (
        recorded.refusal is not None
        or recorded.credential is None
        or (event is None and passkey is None)
    ):
        return StepUpRefused(
            refusal=recorded.refusal or Refusal.CREDENTIAL_NOT_REGISTERED,
            detail=record.detail,
            event_id=event.event_id if event else None,
            user=link.user,
            credential=recorded.credential,
        )
    return StepUpVerified(
        event_id=event.event_id if event else None,
        shown=event.shown if event else None,
        passkey=passkey,
        user=link.user,
        credential=recorded.credential,
        at=recorded.at,
    )


async def complete_registration(
    client: Client,
    rp: RelyingParty,
    token: str,
    response: str | dict[str, Any],
    label: str | None,
) -> Enrollment:
    """Verify the page's `navigator.credentials.create` answer and store the passkey: active at
    once when it is the user's first (`first`: announce it), else pending a security-team
    member's approval (`decide_registration`). Raises PasskeyRefused (link problems,
    INVALID_RESPONSE, USER_VERIFICATION_MISSING, DUPLICATE_CREDENTIAL, ...)."""
    link = Link.parse(token)
    claimed = await _claim(client, link, LinkPurpose.REGISTRATION)
    credential = rp.verify_registration(
        response,
        challenge=base64url_to_bytes(claimed.challenge),
        label=label,
        now=claimed.link.claimed_at or claimed.link.issued_at,
    )
    return await _update(
        client,
        link.user,
        PasskeyUpdate.ADD_CREDENTIAL,
        AddCredential(token_hash=link.token_hash, credential=credential),
        Enrollment,
    )


async def decide_registration(
    client: Client,
    *,
    user: str,
    pending_id: str,
    approver: str,
    approve: bool,
    approver_credential: CredentialRef | None = None,
) -> Enrollment:
    """A security-team member's decision on `user`'s pending passkey. The caller has checked
    that `approver` is on the security team (and their step-up, `approver_credential`, when they
    have a passkey). Raises PasskeyRefused (PENDING_UNKNOWN, SELF_APPROVAL, ...)."""
    return await _update(
        client,
        user,
        PasskeyUpdate.DECIDE_REGISTRATION,
        DecideRegistration(
            pending_id=pending_id,
            approver=approver,
            approve=approve,
            approver_credential=approver_credential,
        ),
        Enrollment,
    )


async def passkeys_of(client: Client, user: str) -> PasskeyStore | None:
    """`user`'s passkeys and pending registrations from the workflow's memo (no worker needed);
    None when they never had a link. Links are not included."""
    return await _memo_of(client, passkey_workflow_id(user), MEMO_KEY, PasskeyStore)


async def _memo_of(client: Client, workflow_id: str, key: str, model: type[R]) -> R | None:
    """A workflow's memo value `key` as `model`; None for an unknown workflow (or key)."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    value: R | None = await description.memo_value(key, None, type_hint=model)
    return value


# The security channel hears of passkeys (PasskeyNoticeWorkflow, started by services.starts).


async def announce_enrollment(
    client: Client,
    settings: Settings,
    enrollment: Enrollment,
    *,
    user: str,
    user_name: str | None = None,
) -> str | None:
    """Tell the security channel of a passkey just registered: a first one (active at once) is
    announced; any other asks a security-team member to approve it. The notice's id, or None
    for an enrollment that needs no notice."""
    if enrollment.status == "active" and enrollment.first:
        kind = NoticeKind.FIRST
    elif enrollment.status == "pending_approval":
        kind = NoticeKind.PENDING
    else:
        return None
    if user_name is None:
        store = await passkeys_of(client, user)
        user_name = store.user_name if store else None
    notice = PasskeyNotice(
        kind=kind,
        user=user,
        user_name=user_name,
        credential=enrollment.credential,
        replaces=enrollment.replaced,
        at=datetime.now(UTC),
    )
    return await announce_passkey(client, settings.task_queue, notice)


async def announce_refusal(
    client: Client, settings: Settings, token: str, refused: StepUpRefused
) -> str | None:
    """Alert the security channel of a step-up refused for a reason it must hear of at once (a
    counter that went backwards: a cloned authenticator; a passkey that is not the link user's);
    once per link. The notice's id, or None when the refusal is not alert-worthy."""
    if not refused.alert or refused.user is None:
        return None
    notice = PasskeyNotice(
        kind=NoticeKind.ALERT,
        user=refused.user,
        credential=refused.credential,
        refusal=refused.refusal,
        detail=refused.detail,
        event_id=refused.event_id,
        link_hash=_hash(token),
        at=datetime.now(UTC),
    )
    return await announce_passkey(client, settings.task_queue, notice)


async def notice_state(client: Client, notice_id: str) -> NoticeState | None:
    """A notice's state from its memo (no worker needed); None for an unknown notice."""
    return await _memo_of(client, notice_id, NOTICE_MEMO, NoticeState)


async def decide_passkey(
    client: Client,
    passkey: PasskeyToApprove,
    *,
    approver: str,
    approver_name: str | None,
    approve: bool,
    approver_credential: CredentialRef | None = None,
) -> Enrollment:
    """A security-team member's decision on `passkey` (another user's pending passkey): the
    store changes (`decide_registration`), then its security-channel notice shows who decided
    and with which passkey. The caller has checked that `approver` is on the team and, to
    approve, their step-up when they have a passkey. Raises PasskeyRefused."""
    enrollment = await decide_registration(
        client,
        user=passkey.user,
        pending_id=passkey.credential.credential_id,
        approver=approver,
        approve=approve,
        approver_credential=approver_credential,
    )
    if passkey.notice_id is not None:
        decided = PasskeyDecided(
            approved=approve,
            by=approver,
            name=approver_name,
            with_credential=approver_credential,
            at=datetime.now(UTC),
        )
        with contextlib.suppress(RPCError):  # the notice stopped waiting: the store decided
            await client.get_workflow_handle(passkey.notice_id).signal(
                PASSKEY_DECIDED_SIGNAL, decided
            )
    return enrollment


# The security team's decision on a pending passkey, from its notice's buttons.


async def answer_passkey_button(
    client: Client,
    settings: Settings,
    *,
    notice_id: str,
    user: str,
    name: str | None,
    approve: bool,
) -> str:
    """*Approve passkey* / *Reject* on a pending passkey's notice, pressed by `user` (Slack's
    signature proved who): what to tell them (Slack mrkdwn, ephemeral).

    Only the security team the notice resolved may decide, never the passkey's owner. Rejecting
    needs nothing more. Approving needs the approver's own step-up when they have a passkey: the
    answer is then a one-time link (`issue_passkey_approval_link`), and the passkey is approved
    once their passkey checks (`approve_passkey_with_step_up`); without one it is approved at
    once and the record says so."""
    state = await notice_state(client, notice_id)
    passkey = state.notice.passkey if state else None
    if state is None or passkey is None:
        return ":no_entry: Powertrip does not know this passkey request."
    if state.decided is not None:
        verb = "approved" if state.decided.approved else "rejected"
        return f"This passkey was {verb} already by <@{state.decided.by}>."
    if user == passkey.user:
        return ":no_entry: Someone else approves your passkeys: ask the security team."
    if user not in state.security_team:
        return ":no_entry: Only the security team can approve or reject a passkey."
    try:
        if not approve:
            await decide_passkey(client, passkey, approver=user, approver_name=name, approve=False)
            return "Rejected: the passkey approves nothing and is removed."
        own = await passkeys_of(client, user)
        if own is None or not own.credentials:
            await decide_passkey(client, passkey, approver=user, approver_name=name, approve=True)
            return (
                "Approved. You have no passkey, so the record says you approved without a "
                "step-up: type `/powertrip passkey` to register one."
            )
        link = await issue_passkey_approval_link(client, settings, approver=user, passkey=passkey)
    except PasskeyRefused as exc:
        return f":warning: Not done ({exc.refusal.value}): {exc.detail or 'try again'}."
    until = link.expires_at.astimezone(UTC).strftime("%H:%M:%S UTC")
    return (
        f":closed_lock_with_key: <{link.url}|Approve it with your passkey> on Powertrip's page: a "
        f"one-time link for you alone, valid until {until}."
    )


async def approve_passkey_with_step_up(
    client: Client, verified: StepUpVerified
) -> tuple[bool, str]:
    """A security-team member's passkey checked on a passkey-approval link: approve the pending
    passkey it names, recorded with the approver's credential. (approved?, what the page says).
    The team is checked again against the notice (someone removed since is refused)."""
    passkey = verified.passkey
    assert passkey is not None
    state = await notice_state(client, passkey.notice_id) if passkey.notice_id else None
    if state is None or verified.user not in state.security_team:
        return False, "Only the security team can approve a passkey."
    if state.decided is not None:
        verb = "approved" if state.decided.approved else "rejected"
        return False, f"This passkey was {verb} already."
    try:
        await decide_passkey(
            client,
            passkey,
            approver=verified.user,
            approver_name=None,
            approve=True,
            approver_credential=verified.credential,
        )
    except PasskeyRefused as exc:
        return False, f"Not approved ({exc.refusal.value}): {exc.detail or 'try again'}."
    who = passkey.user_name or passkey.user
    return True, (
        f"Approved {who}'s passkey “{passkey.credential.label}” with your passkey "
        f"“{verified.credential.label}”."
    )


async def registration_reply_for(
    client: Client, settings: Settings | None, user: str, user_name: str | None
) -> str:
    """`/powertrip passkey` typed by `user` (a Slack id Slack's signature proved): a one-time
    registration link for them, as the ephemeral answer (Slack mrkdwn)."""
    if settings is None or settings.public_url is None:
        return (
            ":no_entry: Passkeys are not set up here: Powertrip has no `POWERTRIP_PUBLIC_URL` for "
            "its pages. Ask whoever runs Powertrip."
        )
    store = await passkeys_of(client, user)
    try:
        link = await issue_registration_link(client, settings, user=user, user_name=user_name)
    except PasskeyRefused as exc:
        return f":warning: No link ({exc.refusal.value}): {exc.detail or 'try again'}."
    return registration_reply(link.url, link.expires_at, len(store.credentials) if store else 0)

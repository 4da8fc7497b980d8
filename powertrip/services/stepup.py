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
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
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
    OpenLink,
    PasskeyQuery,
    PasskeyRefused,
    PasskeyStore,
    PasskeyUpdate,
    RecordAssertion,
    Refusal,
    StepUpOutcome,
    StepUpRefused,
    StepUpVerified,
    is_slack_user,
    passkey_workflow_id,
)
from powertrip.models import CredentialRef, SecurityEvent
from powertrip.relying_party import RelyingParty, new_challenge
from powertrip.services.starts import issue_link_with_start
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
    user_name: str | None,
    request: IssueLink,
    path: str,
    secret_token: str,
) -> IssuedLink:
    if settings.public_url is None:
        relying_party(settings)  # raises the SettingsError that names the setting
    store = PasskeyStore(
        user=user,
        user_name=user_name or user,
        user_handle=bytes_to_base64url(secrets.token_bytes(32)),
    )
    issued: LinkIssued = await _call(
        issue_link_with_start(client, settings.task_queue, store, request)
    )
    return IssuedLink(
        url=f"{settings.public_url}{path}/{secret_token}", expires_at=issued.expires_at
    )


def _new_token(user: str) -> str:
    if not is_slack_user(user):
        raise ValueError(f"not a Slack user id: {user!r}")
    return f"{user}.{secrets.token_urlsafe(32)}"


async def issue_step_up_link(
    client: Client, settings: Settings, *, user: str, event: SecurityEvent
) -> IssuedLink:
    """A link for `user` (Slack id) to approve `event` with a passkey, valid for
    `POWERTRIP_STEP_UP_LINK_SECONDS`. The caller has checked that `user` may approve it.
    Raises PasskeyRefused (TOO_MANY_LINKS, TEMPORARILY_UNAVAILABLE), SettingsError."""
    token = _new_token(user)
    request = IssueLink(
        token_hash=_hash(token),
        purpose=LinkPurpose.STEP_UP,
        valid_seconds=settings.step_up_link_seconds,
        event=EventSummary.of(event),
        action="approve",
    )
    return await _issue(
        client,
        settings,
        user=user,
        user_name=None,
        request=request,
        path="/verify",
        secret_token=token,
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
    e.g. their Slack handle; set on the first link only). `replaces`: the credential id of a
    passkey the new one will replace once a security-team member approves."""
    token = _new_token(user)
    request = IssueLink(
        token_hash=_hash(token),
        purpose=LinkPurpose.REGISTRATION,
        valid_seconds=settings.passkey_link_seconds,
        replaces=replaces,
    )
    return await _issue(
        client,
        settings,
        user=user,
        user_name=user_name,
        request=request,
        path="/passkeys/register",
        secret_token=token,
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
    event = claimed.link.event
    if recorded.refusal is not None or recorded.credential is None or event is None:
        return StepUpRefused(
            refusal=recorded.refusal or Refusal.CREDENTIAL_NOT_REGISTERED,
            detail=record.detail,
            event_id=event.event_id if event else None,
            user=link.user,
            credential=recorded.credential,
        )
    return StepUpVerified(
        event_id=event.event_id, user=link.user, credential=recorded.credential, at=recorded.at
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
    try:
        description = await _store(client, user).describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return await description.memo_value(MEMO_KEY, type_hint=PasskeyStore)

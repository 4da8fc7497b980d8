"""The worker's half of expectations: find the one that pre-approves an event (checking its
signature and its limits again: a workflow started straight through Temporal, or one the config
no longer allows, approves nothing), and verify a revocation."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.slack import SecurityChannel
from powertrip.config import PowertripConfig
from powertrip.contracts.approval import Verdict
from powertrip.contracts.expectations import (
    Expectation,
    ExpectationNotice,
    ExpectationStatus,
    ExpectedApproval,
    NoticeMessage,
    RevocationCheck,
)
from powertrip.directory import SlackDirectory
from powertrip.messages import expectation_notice
from powertrip.models import SecurityEvent
from powertrip.services.expectations import (
    ActiveExpectations,
    Limits,
    LimitsUnchecked,
    NoSuchExpectation,
    get_expectation,
)
from powertrip.signing import Signer, verify_expectation, verify_revocation

log = logging.getLogger(__name__)


class ExpectationActivities:
    """`find_expectation`, `verify_revocation` and the security channel's notice, with the
    worker's Temporal client, its decision keys (`powertrip.signing.verification_keys`), the
    config's limits, and Slack (`security_channel`: its id; `directory`: the worker's Slack
    directory, shared with `SlackActivities`, or a new one on `slack`)."""

    def __init__(
        self,
        client: Client,
        keys: Mapping[Signer, Sequence[str]],
        config: PowertripConfig,
        slack: AsyncWebClient,
        security_channel: str,
        directory: SlackDirectory | None = None,
    ) -> None:
        self._client = client
        # One visibility call a second for every lookup, not one per event (issue 16).
        self._active = ActiveExpectations(client)
        self._keys = keys
        # Who is on the team and who owns an account: the worker's one Slack directory (the
        # one `resolve_recipient` uses), so a group member or an email-mapped owner counts.
        self._limits = Limits.from_config(config, directory or SlackDirectory(slack, config))
        self._slack = slack
        self._channel = SecurityChannel(slack, security_channel)

    @activity.defn(name="post_expectation_notice")
    async def post_expectation_notice(self, notice: ExpectationNotice) -> NoticeMessage:
        """Post the expectation's notice to the security channel; where Slack put it. The
        expectation is new: this worker's next lookup lists again instead of from its cache."""
        self._active.forget()
        channel, ts = await self._channel.post(*expectation_notice(notice))
        return NoticeMessage(channel=channel, ts=ts)

    @activity.defn(name="update_expectation_notice")
    async def update_expectation_notice(self, notice: ExpectationNotice) -> None:
        """Show the events approved so far, or how the expectation ended, in place."""
        assert notice.message is not None
        await self._channel.update(notice.message, *expectation_notice(notice))

    @activity.defn(name="find_expectation")
    async def find_expectation(self, event: SecurityEvent) -> ExpectedApproval | None:
        """The active expectation that covers `event` now (the earliest created), signed with
        a key this worker holds and within today's limits; None if there is none. An owner's
        expectation never covers an event that needs a step-up. Candidates come from the
        worker's listing (`ActiveExpectations`, up to a second old); the one that approves is
        read again from its own workflow first, so a revoked or ended one approves nothing."""
        now = datetime.now(UTC)
        try:
            listed = await self._active.of(event.actor)
        except RPCError as exc:
            # Temporal's time-skipping test server has no visibility: nothing can be expected.
            if exc.status is not RPCStatusCode.UNIMPLEMENTED:
                raise
            log.warning("no visibility to find expectations in: %s", exc.message)
            return None
        candidates = sorted(listed, key=lambda e: e.created_at)
        for expectation in candidates:
            if not expectation.covers(event, now):
                continue
            verdict = verify_expectation(self._keys, expectation)
            if not verdict.authentic or verdict.signer is None:
                log.warning("expectation %s ignored: %s", expectation.id, verdict.reason)
                continue
            try:
                refused = await self._refusal(expectation, Signer(verdict.signer), event)
            except LimitsUnchecked as exc:
                refused = str(exc)
            if refused is not None:
                log.info("expectation %s does not approve %s: %s", expectation.id, event, refused)
                continue
            if not await self._still_active(expectation.id):
                continue
            return ExpectedApproval(expectation=expectation, signer=verdict.signer)
        return None

    async def _still_active(self, expectation_id: str) -> bool:
        """Whether the expectation's own workflow says it is active now (a point read, not
        visibility, which may be a second behind a revocation)."""
        try:
            current = await get_expectation(self._client, expectation_id)
        except NoSuchExpectation:
            return False
        if current.status is not ExpectationStatus.ACTIVE:
            log.info("expectation %s is %s: approves nothing", expectation_id, current.status)
            return False
        return True

    async def _refusal(
        self, expectation: Expectation, signer: Signer, event: SecurityEvent
    ) -> str | None:
        refused = await self._limits.refusal(expectation)
        on_team = refused is None and await self._limits.on_team(expectation.created_by)
        if refused is None and signer is Signer.CLI and not on_team:
            refused = "CLI, not the team"
        if refused is None and event.step_up is not None and not on_team:
            refused = "an owner's expectation does not cover a step-up event"
        return refused

    @activity.defn(name="verify_revocation")
    async def verify_revocation(self, check: RevocationCheck) -> Verdict:
        """Whether the revocation was signed by the API or the CLI for this expectation."""
        return verify_revocation(self._keys, check.expectation_id, check.revocation)

"""`PasskeyNoticeWorkflow`: one security-channel message about a user's passkeys, durable like
every other message Powertrip posts (a retried announcement posts once: one workflow per notice
id, `powertrip.contracts.passkeys.passkey_notice_id`).

- A first passkey: announced (it works at once: there was nothing to step up with).
- Another passkey: the message asks the security team to approve or reject it (buttons); the
  team as it is now is resolved first and kept in the memo, so the API checks a click against
  it. Once decided (the `passkey_decided` signal, sent by the service after the user's
  `PasskeyWorkflow` changed), the message shows who decided and with which passkey.
- An alert: a step-up refused for a reason the team must hear of at once.

The decision itself lives in the user's `PasskeyWorkflow`: this workflow only shows it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.passkeys import PasskeyNoticeActivities
    from activities.slack import SlackActivities
    from powertrip.contracts.passkeys import (
        NOTICE_MEMO,
        PASSKEY_DECIDED_SIGNAL,
        PASSKEY_NOTICE_WORKFLOW,
        PENDING_NOTICE_DAYS,
        NoticeKind,
        NoticeState,
        PasskeyDecided,
        PasskeyNotice,
    )
    from powertrip.contracts.slack import security_channel_post, slack_call


@workflow.defn(name=PASSKEY_NOTICE_WORKFLOW)
class PasskeyNoticeWorkflow:
    """Input `PasskeyNotice`; state, memo (`notice`) and result `NoticeState`."""

    @workflow.init
    def __init__(self, notice: PasskeyNotice) -> None:
        self.state = NoticeState(notice=notice)

    @workflow.signal(name=PASSKEY_DECIDED_SIGNAL)
    def decided(self, decided: PasskeyDecided) -> None:
        """The pending passkey was approved or rejected (the first word stands)."""
        if self.state.decided is None:
            self.state.decided = decided

    @workflow.run
    async def run(self, notice: PasskeyNotice) -> NoticeState:
        """Post the notice; for a pending passkey, wait for the decision and show it."""
        who = notice.user_name or notice.user
        if notice.kind is NoticeKind.PENDING:
            self.state.security_team = await workflow.execute_activity_method(
                SlackActivities.current_security_team,
                **slack_call("who may approve the passkey", timedelta(hours=1)),
            )
            self._publish()
        self.state.message = await workflow.execute_activity_method(
            PasskeyNoticeActivities.post_passkey_notice,
            self.state,
            **security_channel_post(f"tell the security channel: {notice.kind.value} of {who}"),
        )
        self._publish()
        if notice.kind is not NoticeKind.PENDING:
            return self.state
        try:
            await workflow.wait_condition(
                lambda: self.state.decided is not None,
                timeout=timedelta(days=PENDING_NOTICE_DAYS),
            )
        except TimeoutError:
            return self.state
        self._publish()
        await workflow.execute_activity_method(
            PasskeyNoticeActivities.update_passkey_notice,
            self.state,
            **security_channel_post(f"show who decided the passkey of {who}"),
        )
        return self.state

    def _publish(self) -> None:
        workflow.upsert_memo({NOTICE_MEMO: self.state})

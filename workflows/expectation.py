"""`ExpectationWorkflow`: one expectation (expected work, pre-approved), from its creation to
its expiry (a timer) or its revocation (a signed `revoke` signal). Its memo (`expectation`) and
`PowertripStatus`/`PowertripActor` search attributes let the API, the CLI and the worker's
`find_expectation` list the active ones with no worker running. It holds no authority of its
own: the worker checks the expectation's signature and limits before it approves any event."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.expectations import ExpectationActivities
    from powertrip import temporal as attributes
    from powertrip.contracts.expectations import (
        EXPECTATION_MEMO,
        EXPECTATION_WORKFLOW,
        REVOKE_SIGNAL,
        Expectation,
        ExpectationStatus,
        Revocation,
        RevocationCheck,
    )

VERIFY_TIMEOUT = timedelta(seconds=10)
# Forged revocations change nothing; a flood of them is dropped past this many waiting.
MAX_WAITING = 100


@workflow.defn(name=EXPECTATION_WORKFLOW)
class ExpectationWorkflow:
    """Input and result: `Expectation`. Waits until `until`, or until a `revoke` signal that
    the worker verifies (a local activity: the verdict is in history, the key is not)."""

    @workflow.init
    def __init__(self, expectation: Expectation) -> None:
        self.expectation = expectation
        self.revocations: deque[Revocation] = deque()

    @workflow.signal(name=REVOKE_SIGNAL)
    def revoke(self, revocation: Revocation) -> None:
        if len(self.revocations) < MAX_WAITING:
            self.revocations.append(revocation)

    @workflow.query(name=EXPECTATION_MEMO)
    def state(self) -> Expectation:
        return self.expectation

    @workflow.run
    async def run(self, expectation: Expectation) -> Expectation:
        """Until expiry or a verified revocation; then the memo and status say which."""
        while self.expectation.status is ExpectationStatus.ACTIVE:
            left = self.expectation.until - workflow.now()
            if left <= timedelta(0):
                self.expectation.status = ExpectationStatus.EXPIRED
                break
            try:
                await workflow.wait_condition(lambda: bool(self.revocations), timeout=left)
            except TimeoutError:
                continue  # `left` is now zero or less: expired
            await self._take_revocations()
        workflow.upsert_memo({EXPECTATION_MEMO: self.expectation})
        workflow.upsert_search_attributes(
            [attributes.STATUS.value_set(self.expectation.status.value)]
        )
        return self.expectation

    async def _take_revocations(self) -> None:
        while self.revocations:
            revocation = self.revocations.popleft()
            verdict = await workflow.execute_local_activity_method(
                ExpectationActivities.verify_revocation,
                RevocationCheck(expectation_id=self.expectation.id, revocation=revocation),
                start_to_close_timeout=VERIFY_TIMEOUT,
                summary=f"verify a revocation by {revocation.by[:64]}",
            )
            if verdict.authentic:
                self.expectation.status = ExpectationStatus.REVOKED
                self.expectation.revoked_by = revocation.by
                self.expectation.revoked_at = workflow.now()
                self.revocations.clear()
                return
            workflow.logger.warning("revocation rejected: %s", verdict.reason)

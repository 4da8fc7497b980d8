"""The worker's half of authenticated decisions (powertrip.signing): verify a decision before
the workflow counts it. Run as a local activity so the verdict, not the key, is in history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from temporalio import activity

from powertrip.contracts.approval import Verdict, Verdicts, VerifyBatch, VerifyRequest
from powertrip.signing import Signer, verify


class DecisionActivities:
    """`verify_decision(s)`, with the keys the worker holds per signer (`verification_keys`:
    each signer's current key, then its previous one while a rotation rolls out). ValueError
    without any key."""

    def __init__(self, keys: Mapping[Signer, Sequence[str]]) -> None:
        if not any(keys.values()):
            raise ValueError("no decision key: the worker cannot verify any decision")
        self._keys = {signer: list(signer_keys) for signer, signer_keys in keys.items()}

    @activity.defn
    async def verify_decision(self, request: VerifyRequest) -> Verdict:
        """Whether the click was signed with one of this worker's keys for this event, by a signer
        that may vouch for its `via`. One click per call: runs that verified so before
        `verify-decisions-in-batches`."""
        return verify(self._keys, request.event_id, request.click)

    @activity.defn
    async def verify_decisions(self, request: VerifyBatch) -> Verdicts:
        """`verify_decision` for each click of the batch: one local activity, and one marker in
        history, for every click waiting, however many arrived at once."""
        return Verdicts(verdicts=[verify(self._keys, request.event_id, c) for c in request.clicks])

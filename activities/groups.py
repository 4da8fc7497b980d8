"""The group activity (issue 13 §1): an event's workflow joins its burst's one question."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from powertrip.contracts.groups import Joined, JoinRequest
from powertrip.services.starts import join_group


class GroupActivities:
    """`join_group`, with the worker's Temporal client and task queue."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    @activity.defn
    async def join_group(self, request: JoinRequest) -> Joined:
        """Join the event's open group, or start one (`powertrip.services.starts.join_group`):
        idempotent, so Temporal's retries (a worker killed mid-burst) join it once."""
        return await join_group(self._client, self._task_queue, request)

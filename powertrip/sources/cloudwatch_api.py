"""AWS CloudWatch Logs `FilterLogEvents`, for polling and `powertrip backfill --source cloudwatch`.

Credentials and region come from the standard AWS environment (boto3's default chain); only the
endpoint can be pointed elsewhere (`POWERTRIP_AWS_ENDPOINT_URL`, e.g. a local moto server).
boto3 is synchronous: every call runs in a thread so the worker's event loop keeps going.

The cursor: CloudWatch event ids carry no order, only timestamps (milliseconds) do, and many
events can share one. So the cursor is the newest timestamp processed plus the ids seen at that
timestamp; the next poll asks from that timestamp (inclusive) and drops those ids. Nothing at the
boundary is skipped or fetched twice. (An event CloudWatch ingests late, stamped older than the
cursor, is after the cursor's time window: backfill covers that.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import BaseModel

from powertrip.sources.cloudwatch import parse_filtered_events
from powertrip.sources.log_search import LogPage, SearchError, SearchScope

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

MAX_LIMIT = 10_000
# Temporal's activity retry is the one retry loop (it also drives the outage alert): botocore
# makes a single attempt.
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60)
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "LimitExceededException",
        "RequestTimeout",
        "InternalFailure",
    }
)


# One client per endpoint for the process: boto3 clients are thread-safe, and building one (about
# 60 ms of service-model loading) for every poll attempt would dominate a quick poll.
_clients: dict[str | None, CloudWatchLogsClient] = {}
_clients_lock = threading.Lock()


class CloudWatchCursor(BaseModel):
    timestamp: int  # milliseconds since the epoch
    ids: list[str]

    def covers(self, event: dict[str, Any]) -> bool:
        """Processed already: older than the cursor, or at its timestamp with a seen id."""
        stamp = event.get("timestamp")
        if not isinstance(stamp, int):
            return False
        return stamp < self.timestamp or (
            stamp == self.timestamp and str(event.get("eventId")) in self.ids
        )

    def advanced(self, event: dict[str, Any]) -> CloudWatchCursor:
        stamp, event_id = event.get("timestamp"), event.get("eventId")
        if not isinstance(stamp, int) or not event_id or stamp < self.timestamp:
            return self
        if stamp > self.timestamp:
            return CloudWatchCursor(timestamp=stamp, ids=[str(event_id)])
        if str(event_id) in self.ids:
            return self
        return CloudWatchCursor(timestamp=stamp, ids=[*self.ids, str(event_id)])


class _Resume(BaseModel):
    """Where a retried poll continues its window (`nextToken` lives 24 hours)."""

    next_token: str
    newest: CloudWatchCursor | None


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class CloudWatchSearch:
    def __init__(
        self,
        scope: SearchScope,
        endpoint_url: str | None = None,
        limit: int = MAX_LIMIT,
        cloudtrail: bool = False,
    ) -> None:
        """`cloudtrail`: the log group is one a trail writes to, whose CloudTrail records are
        trusted as CloudTrail (`POWERTRIP_CLOUDTRAIL_LOG_GROUPS`)."""
        if not scope.log_group:
            raise ValueError("CloudWatch needs a log group")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        self.scope = scope
        self.log_group = scope.log_group
        self.endpoint_url = endpoint_url
        self.limit = limit
        self.cloudtrail_groups = (scope.log_group,) if cloudtrail else ()

    async def aclose(self) -> None:
        """Nothing to release: the client is shared by every search of the process."""

    async def fetch(
        self,
        *,
        cursor: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        resume: str | None = None,
    ) -> AsyncIterator[LogPage]:
        """`LogSearch`: the events after `cursor` (without one, from `since`) up to `until`,
        oldest first as FilterLogEvents pages them."""
        after = CloudWatchCursor.model_validate_json(cursor) if cursor else None
        progress = _Resume.model_validate_json(resume) if resume else None
        newest = progress.newest if progress else after
        token = progress.next_token if progress else None
        params: dict[str, Any] = {"logGroupName": self.log_group, "limit": self.limit}
        if self.scope.log_stream_prefix:
            params["logStreamNamePrefix"] = self.scope.log_stream_prefix
        if self.scope.query:
            params["filterPattern"] = self.scope.query
        start = after.timestamp if after else (_ms(since) if since else None)
        if start is not None:
            params["startTime"] = start
        if until is not None:
            params["endTime"] = _ms(until)
        while True:
            answer = await asyncio.to_thread(self._filter, params, token)
            events = [
                e for e in answer.get("events", []) if not (after is not None and after.covers(e))
            ]
            for event in events:
                newest = (
                    newest.advanced(event)
                    if newest is not None
                    else CloudWatchCursor(timestamp=event["timestamp"], ids=[event["eventId"]])
                )
            following = answer.get("nextToken")
            # No progress would loop forever: a token equal to the one sent ends the window.
            done = not following or following == token
            yield LogPage(
                items=parse_filtered_events(events, self.log_group, self.cloudtrail_groups),
                cursor=newest.model_dump_json() if newest is not None else cursor,
                resume=None
                if done
                else _Resume(next_token=str(following), newest=newest).model_dump_json(),
            )
            if done:
                return
            token = following

    # In a worker thread ---------------------------------------------------------------------

    def _logs(self) -> CloudWatchLogsClient:
        with _clients_lock:
            client = _clients.get(self.endpoint_url)
            if client is None:
                try:
                    # Its own session: boto3's default session is not thread-safe.
                    client = boto3.session.Session().client(
                        "logs", endpoint_url=self.endpoint_url, config=CLIENT_CONFIG
                    )
                except NoRegionError as exc:
                    raise SearchError(
                        "no AWS region: set AWS_DEFAULT_REGION (or a profile's region)",
                        retryable=False,
                    ) from exc
                _clients[self.endpoint_url] = client
            return client

    def _filter(self, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        where = f"CloudWatch Logs ({self.log_group})"
        request = {**params, "nextToken": token} if token else params
        try:
            answer = self._logs().filter_log_events(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "?"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            raise SearchError(
                f"{where} refused FilterLogEvents: {code}: {error.get('Message', '')}".rstrip(),
                retryable=code in RETRYABLE_CODES or status >= 500,
            ) from exc
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise SearchError(
                f"{where}: no AWS credentials in the environment ({exc})", retryable=False
            ) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise SearchError(f"{where} unreachable: {exc}", retryable=True) from exc
        except BotoCoreError as exc:
            raise SearchError(f"{where}: {exc}", retryable=False) from exc
        return dict(answer)

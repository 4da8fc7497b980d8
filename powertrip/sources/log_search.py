"""A source's log search API, read from a cursor: one interface for polling and API backfill.

Every pollable source implements `LogSearch.fetch`: the events after a `cursor` (or, without
one, from `since`) up to `until`, one `LogPage` at a time. The cursor is the source's own,
opaque to everything else (a Papertrail event id; a CloudWatch timestamp plus the event ids seen
at it), so the poll workflow hands it from run to run without knowing what it means.

Two positions per page, because a page is not the end of a window:
- `cursor`: where the *next* poll starts if the window ends after this page; only handed over
  once every page is processed (Papertrail pages newest first, so an early page's cursor would
  skip the older pages still to come).
- `resume`: where a retried attempt of the *same* window continues (heartbeat details); None
  when this page is the last.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from powertrip.config import SearchScope
from powertrip.sources import ParsedItem

if TYPE_CHECKING:
    from powertrip.settings import Settings

POLLABLE = ("papertrail", "cloudwatch")


class SearchError(RuntimeError):
    """The provider refused or failed; `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class LogPage:
    items: list[ParsedItem]
    cursor: str | None  # the next poll starts here if the window ends with this page
    resume: str | None  # a retried attempt continues the window here; None: window done


class LogSearch(Protocol):
    def fetch(
        self,
        *,
        cursor: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        resume: str | None = None,
    ) -> AsyncIterator[LogPage]: ...

    async def aclose(self) -> None: ...


def scope_problem(source: str, scope: SearchScope) -> str | None:
    """Why `scope` cannot be searched on `source`, or None."""
    if source not in POLLABLE:
        return f"{source} has no log search API here (only {', '.join(POLLABLE)})"
    if source == "cloudwatch" and not scope.log_group:
        return "CloudWatch needs a log group (`sources.cloudwatch.poll.log_group`, --log-group)"
    return None


def open_search(source: str, settings: Settings, scope: SearchScope) -> LogSearch:
    """The search for `source` from the settings; `SearchError` (not retryable) when it is not
    configured."""
    problem = scope_problem(source, scope)
    if problem:
        raise SearchError(problem, retryable=False)
    if source == "cloudwatch":
        # Imported here: boto3 is heavy and only polling and backfill need it.
        from powertrip.sources.cloudwatch_api import CloudWatchSearch

        return CloudWatchSearch(
            scope,
            endpoint_url=settings.aws_endpoint_url,
            cloudtrail=scope.log_group in settings.cloudtrail_log_groups,
        )
    from powertrip.sources.papertrail_api import PapertrailSearch

    token = settings.papertrail_api_token
    if token is None:
        raise SearchError(
            "POWERTRIP_PAPERTRAIL_API_TOKEN is not set: cannot read Papertrail", retryable=False
        )
    return PapertrailSearch(token.get_secret_value(), settings.papertrail_api_url, scope=scope)

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

The interface knows none of its implementations (`papertrail_api`, `cloudwatch_api`); which
source has one, and how it is opened, is `powertrip.sources.searches`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from powertrip.sources import ParsedItem


class SearchScope(BaseModel):
    """What to read from a source's log search API (polling and `powertrip backfill --source`)."""

    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(
        default=None,
        description="Provider search query: Papertrail search syntax (`sshd OR sudo`) or a "
        'CloudWatch Logs filter pattern (`"Accepted"`).',
    )
    system_id: str | None = Field(default=None, description="Papertrail: one system.")
    group_id: str | None = Field(default=None, description="Papertrail: one group.")
    log_group: str | None = Field(default=None, description="CloudWatch: the log group (required).")
    log_stream_prefix: str | None = Field(
        default=None, description="CloudWatch: only streams whose name starts with this."
    )


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
    """A source's search API, from a cursor. `fetch` raises `SearchError`."""

    def fetch(
        self,
        *,
        cursor: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        resume: str | None = None,
    ) -> AsyncIterator[LogPage]: ...

    async def aclose(self) -> None: ...

"""The Papertrail search API (`GET /api/v1/events/search.json`), for backfill and polling.

How the API pages (Papertrail's "Log search API" help page): a request names a window with
`min_id`/`min_time` (oldest) and `max_id`/`max_time` (newest) and returns at most `limit`
events (default 1,000, at most 10,000), oldest first. The search walks from the newest end of
the window backwards and stops early when it has `limit` events (`reached_record_limit`) or after
about 5 seconds (`reached_time_limit`, possibly with no events at all). Either way the answer's
`min_id` is the oldest id it examined, so the next request continues with `max_id = min_id`. The
window is exhausted when the answer says `reached_beginning`.

`tail` is sent as `false` always: with only `min_id`, Papertrail defaults to tail mode, which
favours recent events over completeness, and a backfill must be complete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from powertrip.sources import ParsedItem
from powertrip.sources.log_search import LogPage, SearchError, SearchScope
from powertrip.sources.papertrail import parse_papertrail

MAX_LIMIT = 10_000
DEFAULT_URL = "https://papertrailapp.com/api/v1/"


class PapertrailApiError(SearchError):
    """The API refused or failed; `retryable` says whether trying again can help."""


class SearchPage(BaseModel):
    """One answer of the search API, as Papertrail sends it."""

    model_config = ConfigDict(extra="allow")

    events: list[dict[str, Any]] = Field(default_factory=list)
    min_id: str | None = None
    max_id: str | None = None
    reached_beginning: bool = False
    reached_time_limit: bool = False
    reached_record_limit: bool = False


class Window(BaseModel):
    """What to search: ids are exclusive bounds, times are epoch seconds (UTC)."""

    query: str | None = None
    system_id: str | None = None
    group_id: str | None = None
    min_id: str | None = Field(default=None, description="Only events newer than this id.")
    max_id: str | None = Field(default=None, description="Only events older than this id.")
    min_time: datetime | None = None
    max_time: datetime | None = None


class _Resume(BaseModel):
    """Where a retried poll continues its window: below `max_id`, with the newest id so far."""

    max_id: str
    newest: str | None


@dataclass(frozen=True)
class Batch:
    """A page turned into parsed items, with where to continue."""

    items: list[ParsedItem]
    newest_id: str | None  # the newest event id in this page, if any
    next_max_id: str | None  # continue with this `max_id`; None: the window is done


def _id_key(value: str) -> tuple[int, str, str]:
    # Papertrail ids are 64-bit integers sent as strings; compare them as numbers, by length
    # then digits: no `int()` of whatever a page holds (5000 digits, `²`), and no limit.
    digits = value.lstrip("0")
    return (len(digits), digits, "") if value.isascii() and value.isdigit() else (0, "", value)


def newer(a: str | None, b: str | None) -> str | None:
    """The newer of two Papertrail ids (None is older than anything)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _id_key(a) >= _id_key(b) else b


class PapertrailSearch:
    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_URL,
        limit: int = MAX_LIMIT,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        scope: SearchScope | None = None,
    ) -> None:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        self.limit = limit
        self.scope = scope or SearchScope()
        self._http = httpx.AsyncClient(
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            headers={"X-Papertrail-Token": token, "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> PapertrailSearch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def search(self, window: Window) -> SearchPage:
        params: dict[str, str] = {"limit": str(self.limit), "tail": "false"}
        for name in ("system_id", "group_id", "min_id", "max_id"):
            value = getattr(window, name)
            if value is not None:
                params[name] = value
        if window.query:
            params["q"] = window.query
        if window.min_time is not None:
            params["min_time"] = str(int(window.min_time.timestamp()))
        if window.max_time is not None:
            params["max_time"] = str(int(window.max_time.timestamp()))
        try:
            response = await self._http.get("events/search.json", params=params)
        except httpx.HTTPError as exc:
            raise PapertrailApiError(f"Papertrail unreachable: {exc!r}", retryable=True) from exc
        if response.status_code == 429:
            retry_after = float(response.headers.get("Retry-After", "5") or 5)
            raise PapertrailApiError(
                "Papertrail rate limit", retryable=True, retry_after=retry_after
            )
        if response.status_code in (401, 403):
            raise PapertrailApiError(
                f"Papertrail refused the API token (HTTP {response.status_code})", retryable=False
            )
        if response.status_code >= 500:
            raise PapertrailApiError(
                f"Papertrail unavailable (HTTP {response.status_code})", retryable=True
            )
        if response.status_code >= 400:
            raise PapertrailApiError(
                f"Papertrail rejected the search (HTTP {response.status_code}): "
                f"{response.text[:200]}",
                retryable=False,
            )
        try:
            return SearchPage.model_validate(response.json())
        except ValueError as exc:
            raise PapertrailApiError(
                f"Papertrail answered something that is not a search result: {exc}",
                retryable=True,
            ) from exc

    async def pages(self, window: Window) -> AsyncIterator[Batch]:
        """Every event in the window, one page at a time, newest page first.

        Events outside the id bounds are dropped here, so that an API treating the bounds as
        inclusive cannot hand the same boundary event over twice.
        """
        max_id = window.max_id
        while True:
            page = await self.search(window.model_copy(update={"max_id": max_id}))
            events = [
                e
                for e in page.events
                if not (window.min_id and _id_key(str(e.get("id", ""))) <= _id_key(window.min_id))
                and not (max_id and _id_key(str(e.get("id", ""))) >= _id_key(max_id))
            ]
            newest: str | None = None
            for event in events:
                if isinstance(event.get("id"), int | str) and str(event["id"]).strip():
                    newest = newer(newest, str(event["id"]))
            done = page.reached_beginning or page.min_id is None
            if not done and max_id is not None and page.min_id is not None:
                # No progress would loop forever; Papertrail always moves min_id back.
                done = _id_key(page.min_id) >= _id_key(max_id)
            next_max_id = None if done else page.min_id
            yield Batch(
                items=parse_papertrail({"events": events}),
                newest_id=newest,
                next_max_id=next_max_id,
            )
            if next_max_id is None:
                return
            max_id = next_max_id

    async def fetch(
        self,
        *,
        cursor: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        resume: str | None = None,
    ) -> AsyncIterator[LogPage]:
        """`LogSearch`: the events newer than the id `cursor` (without one, from `since`) up to
        `until`, newest page first. The cursor moves to the newest id seen."""
        progress = _Resume.model_validate_json(resume) if resume else None
        newest = progress.newest if progress else cursor
        window = Window(
            query=self.scope.query,
            system_id=self.scope.system_id,
            group_id=self.scope.group_id,
            min_id=cursor,
            max_id=progress.max_id if progress else None,
            min_time=None if cursor else since,
            max_time=until,
        )
        async for batch in self.pages(window):
            newest = newer(newest, batch.newest_id)
            yield LogPage(
                items=batch.items,
                cursor=newest,
                resume=None
                if batch.next_max_id is None
                else _Resume(max_id=batch.next_max_id, newest=newest).model_dump_json(),
            )

"""The Papertrail search API client against the local fake, over HTTP: every event of a window
exactly once across pages, record and time limits honoured, errors classified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from powertrip.sandbox.fake_papertrail import FakePapertrail
from powertrip.sources.papertrail_api import PapertrailApiError, PapertrailSearch, Window
from tests.harness import ssh_line
from tests.servers import PAPERTRAIL_TOKEN


async def collect(search: PapertrailSearch, window: Window) -> list[str]:
    ids = []
    async for batch in search.pages(window):
        for item in batch.items:
            assert item.raw is not None, item.error
            ids.append(item.raw.provider_id)
    return ids


async def test_pages_through_a_window_with_the_record_limit(
    fake_papertrail: FakePapertrail, papertrail_url: str
) -> None:
    events = [fake_papertrail.add(ssh_line(f"user{i}")) for i in range(25)]
    async with PapertrailSearch(PAPERTRAIL_TOKEN, papertrail_url, limit=10) as search:
        ids = await collect(search, Window())
    assert sorted(ids) == sorted(str(e.id) for e in events)
    assert len(ids) == len(set(ids))
    # Newest page first, each continuing below the previous page's oldest id; tail off always.
    requests = fake_papertrail.requests
    assert len(requests) == 3
    assert "max_id" not in requests[0]
    assert requests[1]["max_id"] == str(events[15].id)
    assert requests[2]["max_id"] == str(events[5].id)
    assert all(r["tail"] == "false" and r["limit"] == "10" for r in requests)


async def test_time_limited_answers_without_events_still_continue(
    fake_papertrail: FakePapertrail, papertrail_url: str
) -> None:
    # Only a few lines match the query; the search budget runs out before it finds any in most
    # answers (reached_time_limit with no events), and the client must keep going.
    for i in range(30):
        fake_papertrail.add("Accepted publickey for alice" if i % 10 == 0 else f"noise {i}")
    fake_papertrail.scan_budget = 4
    async with PapertrailSearch(PAPERTRAIL_TOKEN, papertrail_url) as search:
        ids = await collect(search, Window(query="Accepted"))
    assert len(ids) == 3
    assert len(fake_papertrail.requests) == 8
    empty = [r for r in fake_papertrail.requests if "max_id" in r]
    assert empty, "continued with max_id after a time-limited answer"


async def test_window_by_id_and_time(fake_papertrail: FakePapertrail, papertrail_url: str) -> None:
    now = datetime.now(UTC)
    old = fake_papertrail.add(ssh_line("old"), received_at=now - timedelta(days=2))
    seen = fake_papertrail.add(ssh_line("seen"), received_at=now - timedelta(hours=1))
    new = [fake_papertrail.add(ssh_line(f"new{i}")) for i in range(3)]
    async with PapertrailSearch(PAPERTRAIL_TOKEN, papertrail_url, limit=2) as search:
        after_cursor = await collect(search, Window(min_id=str(seen.id)))
        last_day = await collect(search, Window(min_time=now - timedelta(days=1)))
    assert sorted(after_cursor) == sorted(str(e.id) for e in new)
    assert str(old.id) not in last_day and len(last_day) == 4
    assert all(r["min_id"] == str(seen.id) for r in fake_papertrail.requests[:2])


async def test_errors_say_whether_to_retry(
    fake_papertrail: FakePapertrail, papertrail_url: str
) -> None:
    async with PapertrailSearch("wrong-token", papertrail_url) as search:
        with pytest.raises(PapertrailApiError, match="refused the API token") as refused:
            await collect(search, Window())
    assert not refused.value.retryable
    fake_papertrail.down = True
    async with PapertrailSearch(PAPERTRAIL_TOKEN, papertrail_url) as search:
        with pytest.raises(PapertrailApiError, match="unavailable") as down:
            await collect(search, Window())
    assert down.value.retryable
    async with PapertrailSearch(PAPERTRAIL_TOKEN, "http://127.0.0.1:9/api/v1/") as search:
        with pytest.raises(PapertrailApiError, match="unreachable") as unreachable:
            await collect(search, Window())
    assert unreachable.value.retryable

"""Debian's chromium driven by Playwright (it cannot download its own browsers here), shared by
the browser tests. A test using `chromium` is skipped only where chromium is not installed;
`scripts/test` installs it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/test installs it)"
)


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


async def loopback_only(page: Page) -> list[str]:
    """Refuse every request the page makes beyond this machine, as an isolated network would;
    return the list of refused URLs (filled as the page loads)."""
    refused: list[str] = []

    async def decide(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme == "data" or url.hostname in ("127.0.0.1", "localhost"):
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort()

    await page.route("**/*", decide)
    return refused

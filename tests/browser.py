"""Debian's chromium driven by Playwright (it cannot download its own browsers here), shared by
the browser tests. A test using `chromium` is skipped only where chromium is not installed;
`scripts/test` installs it."""

from __future__ import annotations

import os
import re
import shutil
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


REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / ".powertrip" / "screenshots"
README_IMAGES = REPO / "docs" / "img"


async def screenshot(page: Page, name: str) -> None:
    """A full-page screenshot, scrolled to the top, in `.powertrip/screenshots/<name>.png`; also
    the README's copy in `docs/img/` when POWERTRIP_UPDATE_SCREENSHOTS=1."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")  # a sticky header at the top, once
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    if os.environ.get("POWERTRIP_UPDATE_SCREENSHOTS") == "1":
        README_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(SCREENSHOTS / f"{name}.png", README_IMAGES / f"{name}.png")


def assert_readme_shows(names: list[str], pattern: str) -> None:
    """The README shows exactly `names` among its `docs/img/<pattern>.png` images, and each is
    committed."""
    readme = (REPO / "README.md").read_text()
    shown = set(re.findall(rf"\]\((docs/img/{pattern}\.png)\)", readme))
    assert shown == {f"docs/img/{name}.png" for name in names}
    for path in shown:
        assert (REPO / path).is_file(), f"{path}: run with POWERTRIP_UPDATE_SCREENSHOTS=1"

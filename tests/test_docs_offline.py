"""`/docs` and `/redoc` work on a network without internet: their Swagger UI and ReDoc files come
from the API itself (issue 17: the default pages loaded them from a CDN and stayed blank)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from api.main import create_app
from tests.browser import chromium, loopback_only, needs_chromium
from tests.harness import make_settings
from tests.servers import ServedApp

__all__ = ["chromium"]


def _app() -> httpx.AsyncClient:
    app = create_app(make_settings("http://127.0.0.1:9/api/"))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_every_asset_from_the_api_itself(page: str) -> None:
    async with _app() as http:
        html = (await http.get(page)).text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert any(a.endswith(".js") for a in assets), html
        for asset in assets:
            assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
            answer = await http.get(asset)
            assert answer.status_code == 200, asset
            assert len(answer.content) > 4000, asset
        assert "fonts.googleapis" not in html and "cdn." not in html


@needs_chromium
async def test_swagger_ui_renders_with_no_network_beyond_this_machine(chromium: object) -> None:
    from playwright.async_api import Browser, expect

    assert isinstance(chromium, Browser)
    async with ServedApp(_app_without_temporal()) as api:
        page = await chromium.new_page()
        refused = await loopback_only(page)
        await page.goto(f"{api.url}/docs")
        await expect(page.get_by_text("/webhooks/papertrail").first).to_be_visible(timeout=15_000)
        await expect(page.get_by_text("/v1/approvals/match").first).to_be_visible()
        assert refused == []


def _app_without_temporal() -> FastAPI:
    """The API's routes and docs, without the lifespan that connects to Temporal."""
    app = create_app(make_settings("http://127.0.0.1:9/api/"))
    app.router.lifespan_context = _no_lifespan
    return app


@asynccontextmanager
async def _no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield

"""The FastAPI front door: webhooks in, Slack clicks to workflows, the record out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.routes import events, ops, passkeys, slack, webhooks
from powertrip import observability
from powertrip.config import load_config
from powertrip.decisions import decision_key
from powertrip.settings import API_SECRETS, Settings, load_settings
from powertrip.temporal import connect

log = logging.getLogger("powertrip.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    observability.redact_access_logs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or load_settings()
        resolved.require(*API_SECRETS, who="API")
        app.state.decision_key = decision_key(resolved, "API")
        app.state.settings = resolved
        app.state.config = load_config(resolved.config)
        app.state.rules = app.state.config.rule_set()
        app.state.temporal = await connect(resolved)
        log.info(
            "API ready: Temporal %s/%s, %d rules",
            resolved.temporal_address,
            resolved.temporal_namespace,
            len(app.state.rules.rules),
        )
        yield

    # Security networks are often offline: /docs and /redoc load their Swagger UI and ReDoc files
    # from this server (fastapi-offline's copies), never from a CDN.
    app = FastAPIOffline(
        title="Powertrip",
        summary="Did a human who owns it say 'yes, that was me'?",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(webhooks.router)
    app.include_router(slack.router)
    app.include_router(events.router)
    app.include_router(ops.router)
    app.include_router(passkeys.router)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()

"""The FastAPI front door: webhooks in, Slack clicks to workflows, the record out."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from temporalio.service import RPCError, RPCStatusCode

from api.deps import unambiguous_request
from api.routes import events, expectations, ops, passkeys, slack, webhooks
from api.slack_app import create_slack_app, slack_web_client
from powertrip.config import load_config
from powertrip.directory import SlackDirectory
from powertrip.logs import redact_access_logs
from powertrip.services.expectations import (
    ExpectationRefused,
    LimitsUnchecked,
    NoSuchExpectation,
)
from powertrip.services.stepup import check_step_up_setup
from powertrip.settings import API_SECRETS, Settings, load_settings
from powertrip.signing import decision_key
from powertrip.temporal import connect
from powertrip.visibility import PageTokenError, RecordError

log = logging.getLogger("powertrip.api")


def add_exception_handlers(app: FastAPI) -> None:
    """What the services raise, as HTTP answers, for every route: a question the record cannot
    answer as asked is a 422, a page token this API did not issue a 400, and Temporal
    throttling (visibility is rate limited per namespace, `frontend.namespaceRPS.visibility`) a
    503 with `Retry-After`, never a 500; so is Slack not saying who is on the security team
    when an expectation's limits need it (`LimitsUnchecked`). Bodies are FastAPI's
    `{"detail": ...}`."""

    async def record_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    async def page_token_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_400_BAD_REQUEST)

    async def temporal_error(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RPCError) or exc.status is not RPCStatusCode.RESOURCE_EXHAUSTED:
            raise exc
        return JSONResponse(
            {"detail": f"Temporal is rate limiting this namespace: {exc.message}; retry shortly"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_403_FORBIDDEN)

    async def unchecked(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)

    app.add_exception_handler(RecordError, record_error)
    app.add_exception_handler(ExpectationRefused, refused)
    app.add_exception_handler(LimitsUnchecked, unchecked)
    app.add_exception_handler(NoSuchExpectation, not_found)
    app.add_exception_handler(PageTokenError, page_token_error)
    app.add_exception_handler(RPCError, temporal_error)


def documented_query_parameters(app: FastAPI) -> set[str]:
    """The query parameters the API documents (its OpenAPI), the only ones whose values its
    access log keeps; credentials are security schemes, never among them."""
    return {
        parameter["name"]
        for operations in app.openapi().get("paths", {}).values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter.get("in") == "query"
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API: settings, config, rules, the Bolt app and the Temporal client are loaded at
    startup (`settings`: these instead of `POWERTRIP_*` from the environment)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or load_settings()
        resolved.require(*API_SECRETS, who="API")
        app.state.decision_key = decision_key(resolved, "API")
        app.state.settings = resolved
        app.state.config = load_config(resolved.config)
        app.state.rules = app.state.config.rule_set()
        check_step_up_setup(app.state.config, resolved)
        # One Slack directory (who is on the security team, who owns an account) for the
        # routes and the Bolt listeners: one cache, one answer.
        app.state.directory = SlackDirectory(slack_web_client(resolved), app.state.config)
        app.state.slack = AsyncSlackRequestHandler(create_slack_app(resolved, app.state.directory))
        app.state.temporal = await connect(resolved)
        log.info(
            "API ready: Temporal %s/%s, %d rules",
            resolved.temporal_address,
            resolved.temporal_namespace,
            len(app.state.rules.rules),
        )
        # What start-up loaded lives as long as the process: out of the cyclic collector's
        # sight, a full collection during a big request (it holds every thread, the event
        # loop's too) walks only what requests made.
        gc.freeze()
        yield

    # Security networks are often offline: /docs and /redoc load their Swagger UI and ReDoc files
    # from this server (fastapi-offline's copies), never from a CDN.
    app = FastAPIOffline(
        title="Powertrip",
        summary="Did a human who owns it say 'yes, that was me'?",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(unambiguous_request)],
    )
    app.include_router(webhooks.router)
    app.include_router(slack.router)
    app.include_router(events.router)
    app.include_router(expectations.router)
    app.include_router(ops.router)
    app.include_router(passkeys.router)
    add_exception_handlers(app)
    redact_access_logs(documented_query_parameters(app))

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()

"""Dependencies shared by the routes, as `Annotated` aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from temporalio.client import Client

from powertrip.config import PowertripConfig
from powertrip.rules import RuleSet
from powertrip.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_config(request: Request) -> PowertripConfig:
    return request.app.state.config


def get_rules(request: Request) -> RuleSet:
    return request.app.state.rules


def get_temporal(request: Request) -> Client:
    return request.app.state.temporal


SettingsDep = Annotated[Settings, Depends(get_settings)]
ConfigDep = Annotated[PowertripConfig, Depends(get_config)]
RulesDep = Annotated[RuleSet, Depends(get_rules)]
TemporalDep = Annotated[Client, Depends(get_temporal)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _check(given: str | None, expected: str, what: str) -> None:
    if given is None or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"missing or wrong {what}",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_webhook_token(request: Request, settings: SettingsDep) -> None:
    """Providers that cannot set headers (Papertrail) pass the secret as `?token=`."""
    given = _bearer(request) or request.query_params.get("token")
    _check(given, settings.webhook_token.get_secret_value(), "webhook token")


def require_api_token(request: Request, settings: SettingsDep) -> None:
    _check(_bearer(request), settings.api_token.get_secret_value(), "API token")


WebhookAuth = Depends(require_webhook_token)
ApiAuth = Depends(require_api_token)

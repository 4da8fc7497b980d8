"""Connecting to Temporal the same way everywhere (API, worker, CLI, tests), and Powertrip's
search attributes."""

from __future__ import annotations

from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, TLSConfig
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from powertrip.settings import Settings

STATUS = SearchAttributeKey.for_keyword("PowertripStatus")
ACTOR = SearchAttributeKey.for_keyword("PowertripActor")
HOST = SearchAttributeKey.for_keyword("PowertripHost")
# Keyword matching is case-sensitive: the API and CLI search this normal form (powertrip.hosts).
HOST_KEY = SearchAttributeKey.for_keyword("PowertripHostKey")
RULE = SearchAttributeKey.for_keyword("PowertripRule")
SOURCE = SearchAttributeKey.for_keyword("PowertripSource")
EVENT_TIME = SearchAttributeKey.for_datetime("PowertripEventTime")
# The event's natural identity (powertrip.identity): the same action whichever route brought it.
IDENTITY = SearchAttributeKey.for_keyword("PowertripIdentity")

SEARCH_ATTRIBUTES: list[SearchAttributeKey] = [
    STATUS,
    ACTOR,
    HOST,
    HOST_KEY,
    RULE,
    SOURCE,
    EVENT_TIME,
    IDENTITY,
]


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS for the Temporal connection: mTLS files (Temporal Cloud or a self-hosted cluster with
    its own CA), plain TLS with the system roots (`POWERTRIP_TEMPORAL_TLS=true`), or none. An API
    key (Temporal Cloud) always travels over TLS."""

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path else None

    if settings.temporal_tls_cert or settings.temporal_tls_ca or settings.temporal_tls_server_name:
        return TLSConfig(
            client_cert=read(settings.temporal_tls_cert),
            client_private_key=read(settings.temporal_tls_key),
            server_root_ca_cert=read(settings.temporal_tls_ca),
            domain=settings.temporal_tls_server_name,
        )
    return settings.temporal_tls or settings.temporal_api_key is not None


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """`runtime`: the worker passes one exporting Prometheus metrics (activities/metrics.py)."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=tls_config(settings),
        api_key=api_key,
        runtime=runtime,
    )


def namespace_not_found(exc: RPCError) -> bool:
    """Temporal answered NOT_FOUND because the namespace itself does not exist (a wrong
    POWERTRIP_TEMPORAL_NAMESPACE), not the workflow asked for."""
    return exc.status is RPCStatusCode.NOT_FOUND and any(
        detail.type_url.endswith(".NamespaceNotFoundFailure") for detail in exc.grpc_status.details
    )


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register Powertrip's search attributes that the namespace lacks; return those added.

    Lists first: one already-registered name fails a whole add request.
    """
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as exc:
        # The Java time-skipping server cannot list, only add; it always starts empty.
        if exc.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in SEARCH_ATTRIBUTES
        if key.name not in known
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)

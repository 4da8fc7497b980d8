"""One-shot setup job: `python -m deploy.temporal_setup [--retention-days 30]`.

Creates the Temporal namespace if it does not exist and registers Powertrip's search attributes
the namespace lacks. Idempotent: run it on every deploy (docker-compose runs it before the worker
and API start). Reads the same `POWERTRIP_*` settings as the services.

Temporal Cloud: namespaces are created in the Cloud UI or with `tcld`; this job then finds the
namespace and only registers missing search attributes (run it with an API key or certificate
allowed to do so, or create them in the Cloud UI: the names are in powertrip/temporal.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from powertrip.logs import configure_logging
from powertrip.process import exit_now
from powertrip.settings import Settings, SettingsError, load_settings
from powertrip.temporal import connect, ensure_search_attributes

log = logging.getLogger("powertrip.setup")


async def connect_patiently(settings: Settings, wait: float) -> Client:
    """The server may still be starting (its health check passing before the frontend serves)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return await connect(settings)
        except RuntimeError as exc:  # the SDK reports connection failures as RuntimeError
            if time.monotonic() > deadline:
                raise
            log.info("waiting for Temporal at %s: %s", settings.temporal_address, exc)
            await asyncio.sleep(2)


async def ensure_namespace(client: Client, namespace: str, retention: timedelta) -> bool:
    """Register `namespace` unless it exists; True if this call created it."""
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        return False
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                description="Powertrip: one workflow per security event",
                workflow_execution_retention_period=Duration(
                    seconds=int(retention.total_seconds())
                ),
            )
        )
    except RPCError as exc:
        if exc.status is not RPCStatusCode.ALREADY_EXISTS:  # another job got there first
            raise
        return False
    return True


async def register_attributes(client: Client, namespace: str, wait: float) -> list[str]:
    """A namespace registered a moment ago may not be visible to every frontend yet."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return await ensure_search_attributes(client, namespace)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            log.info("namespace %r not visible yet: %s", namespace, exc.message)
            await asyncio.sleep(1)


async def setup(settings: Settings, retention: timedelta, wait: float = 120.0) -> list[str]:
    """Returns what changed, in words."""
    client = await connect_patiently(settings, wait)
    namespace = settings.temporal_namespace
    changes = []
    if await ensure_namespace(client, namespace, retention):
        changes.append(f"created namespace {namespace} (retention {retention.days} days)")
    added = await register_attributes(client, namespace, wait)
    if added:
        changes.append(f"registered search attributes: {', '.join(added)}")
    return changes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.temporal_setup", description=__doc__)
    parser.add_argument(
        "--retention-days",
        type=int,
        default=30,
        help="How long closed workflows are kept; also how long a re-delivered event is still "
        "recognised as a duplicate. Only used when creating the namespace.",
    )
    parser.add_argument("--wait", type=float, default=120.0, help="Seconds to wait for Temporal.")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.exit(f"powertrip setup: {exc}")
    configure_logging(settings)
    changes = asyncio.run(setup(settings, timedelta(days=args.retention_days), args.wait))
    for change in changes or [f"namespace {settings.temporal_namespace}: nothing to do"]:
        log.info("%s", change)
    exit_now(0)


if __name__ == "__main__":
    main()

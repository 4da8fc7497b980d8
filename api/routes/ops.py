"""For orchestrators and Prometheus: readiness and metrics. (`/healthz`, process up, is in main.)"""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.service import RPCError

from api.deps import TemporalDep
from api.metrics import PendingCounter

log = logging.getLogger("powertrip.api")
router = APIRouter(tags=["ops"])
READY_TIMEOUT = timedelta(seconds=3)
pending = PendingCounter()


@router.get("/readyz", responses={503: {"description": "Temporal unreachable or config missing"}})
async def readyz(request: Request, temporal: TemporalDep) -> JSONResponse:
    """Ready to take traffic: config and rules loaded, Temporal answering for our namespace
    (DescribeNamespace also proves the credentials work, e.g. a Temporal Cloud API key)."""
    rules = getattr(request.app.state, "rules", None)
    if rules is None:
        return _not_ready("config not loaded")
    try:
        await temporal.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=temporal.namespace), timeout=READY_TIMEOUT
        )
    except RPCError as exc:
        return _not_ready(f"Temporal namespace {temporal.namespace!r}: {exc.message}")
    except Exception as exc:  # timeouts and connection errors are "not ready", not a 500
        return _not_ready(f"Temporal unreachable: {exc}")
    return JSONResponse(
        {"status": "ready", "namespace": temporal.namespace, "rules": len(rules.rules)}
    )


def _not_ready(reason: str) -> JSONResponse:
    log.warning("not ready: %s", reason)
    return JSONResponse(
        {"status": "not ready", "reason": reason}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE
    )


@router.get("/metrics", response_class=Response)
async def metrics(temporal: TemporalDep) -> Response:
    """Prometheus exposition: ingest counters of this replica, cluster-wide pending gauge."""
    await pending.refresh(temporal)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

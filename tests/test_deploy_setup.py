"""The one-shot setup job (`python -m deploy.temporal_setup`) creates the namespace and Powertrip's
search attributes on a real Temporal server, and running it again changes nothing."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from deploy.temporal_setup import setup
from powertrip.temporal import SEARCH_ATTRIBUTES
from tests.harness import make_settings

REPO = Path(__file__).resolve().parents[1]


async def test_setup_job_creates_namespace_and_attributes_once(
    dev_env: WorkflowEnvironment, slack_api_url: str
) -> None:
    namespace = f"powertrip-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        slack_api_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        temporal_namespace=namespace,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRIP_")}
    env.update(
        POWERTRIP_TEMPORAL_ADDRESS=settings.temporal_address,
        POWERTRIP_TEMPORAL_NAMESPACE=namespace,
        POWERTRIP_SLACK_SIGNING_SECRET="s",
        POWERTRIP_WEBHOOK_TOKEN="w",
        POWERTRIP_API_TOKEN="a",
    )
    job = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy.temporal_setup",
        "--retention-days",
        "45",
        "--wait",
        "30",
        cwd=REPO,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(job.communicate(), 60)
    output = stderr.decode()
    assert job.returncode == 0, output
    assert f"created namespace {namespace} (retention 45 days)" in output
    assert "registered search attributes: PowertripActor" in output

    described = await dev_env.client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    assert described.config.workflow_execution_retention_ttl.ToTimedelta() == timedelta(days=45)
    listed = await dev_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    assert {key.name for key in SEARCH_ATTRIBUTES} <= set(listed.custom_attributes)

    # Every deploy runs it again: nothing to do, no error.
    assert await setup(settings, timedelta(days=45), wait=10) == []

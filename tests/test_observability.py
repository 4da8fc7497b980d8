"""What an operator sees: the API's /metrics and /readyz, the worker's Prometheus endpoint (Temporal
SDK + Powertrip metrics), and JSON log lines that carry the event id."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.metrics import temporal_runtime
from api.main import create_app
from api.routes import ops
from powertrip.contracts.approval import Action
from powertrip.logs import JsonFormatter
from powertrip.models import EventStatus
from powertrip.sandbox.fake_slack import FakeSlack, InjectedFailure
from powertrip.services.starts import ResultStatus, start_approval
from tests.harness import decide, eventually, make_event, make_settings, running_worker, ssh_line
from tests.servers import ServedApp, free_port
from workflows.approval import ApprovalWorkflow

HOOK = {"Authorization": "Bearer hook-secret"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition, keyed by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


class Captured(logging.Handler):
    """Collects formatted JSON lines from the loggers it is attached to."""

    def __init__(self, *loggers: str) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []
        self.loggers = [logging.getLogger(name) for name in loggers]

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def __enter__(self) -> Captured:
        self.saved = [logger.level for logger in self.loggers]
        for logger in self.loggers:
            logger.addHandler(self)
            logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger, level in zip(self.loggers, self.saved, strict=True):
            logger.removeHandler(self)
            logger.setLevel(level)


@pytest.fixture
def fresh_pending_count() -> Iterator[None]:
    """The API caches the visibility count between scrapes; tests want it now."""
    saved = ops.pending.max_age
    ops.pending.max_age = 0
    yield
    ops.pending.max_age = saved


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, slack_api_url: str) -> AsyncIterator[ServedApp]:
    settings = make_settings(
        slack_api_url, temporal_address=dev_env.client.service_client.config.target_host
    )
    async with ServedApp(create_app(settings)) as served:
        yield served


async def test_api_metrics_count_events_by_outcome_and_pending_events(
    api: ServedApp, fresh_pending_count: None
) -> None:
    ids = [uuid.uuid4().hex for _ in range(2)]
    alice = ssh_line("alice")
    events = [
        {"id": ids[0], "hostname": "web1", "program": "sshd", "message": alice},
        {"id": ids[1], "hostname": "web1", "program": "sshd", "message": ssh_line("bob")},
        {"id": ids[0], "hostname": "web1", "program": "sshd", "message": alice},  # a retry
        {"id": uuid.uuid4().hex, "hostname": "web1", "program": "cron", "message": "tick"},
    ]
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        before = samples((await http.get("/metrics")).text)
        with Captured("powertrip.events") as logs:
            response = await http.post(
                "/webhooks/papertrail", json={"events": events}, headers=HOOK
            )
        assert response.is_success, response.text
        statuses = [r["status"] for r in response.json()["results"]]
        assert sorted(statuses) == ["duplicate", "started", "started", "unmatched"]

        after = samples((await http.get("/metrics")).text)

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("powertrip_events_received_total", source="papertrail") == 4
        rule = "sshd-accepted"
        assert (
            delta("powertrip_events_total", source="papertrail", rule=rule, outcome="started") == 2
        )
        assert (
            delta("powertrip_events_total", source="papertrail", rule=rule, outcome="duplicate")
            == 1
        )
        assert (
            delta("powertrip_events_total", source="papertrail", rule="none", outcome="unmatched")
            == 1
        )
        # Nothing works these events (no worker on this queue): they are pending, cluster-wide.
        assert value(after, "powertrip_pending_events", status="pending") >= 2

    # One JSON line per record, the event id on each one that has an event.
    by_outcome = {line["outcome"]: line for line in logs.lines}
    assert by_outcome["started"]["event_id"].startswith("papertrail-")
    assert by_outcome["duplicate"]["event_id"] == f"papertrail-{ids[0]}"
    assert by_outcome["unmatched"]["source"] == "papertrail"
    assert "no rule matched" in by_outcome["unmatched"]["reason"]


async def test_readyz_checks_temporal_and_namespace(
    dev_env: WorkflowEnvironment, api: ServedApp, slack_api_url: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready" and ready.json()["rules"] >= 1
        assert (await http.get("/healthz")).status_code == 200

    wrong_namespace = make_settings(
        slack_api_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        temporal_namespace="no-such-namespace",
    )
    app = create_app(wrong_namespace)
    async with (
        ServedApp(app) as served,
        httpx.AsyncClient(base_url=served.url, timeout=10) as http,
    ):
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert "no-such-namespace" in response.json()["reason"]
        assert (await http.get("/healthz")).status_code == 200  # up, just not ready

        # Temporal goes away under a running API: not ready, and /metrics still answers.
        app.state.temporal = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert "Temporal" in response.json()["reason"]
        assert (await http.get("/metrics")).status_code == 200


async def test_worker_exports_sdk_and_powertrip_metrics_and_logs_event_ids(
    time_skipping_env: WorkflowEnvironment, fake_slack: FakeSlack, slack_api_url: str
) -> None:
    bind = f"127.0.0.1:{free_port()}"
    settings = make_settings(slack_api_url, metrics_bind=bind)
    runtime = temporal_runtime(settings)
    assert runtime is not None
    client = await Client.connect(
        time_skipping_env.client.service_client.config.target_host,
        namespace=time_skipping_env.client.namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    fake_slack.failures["chat.postMessage"].append(
        InjectedFailure(method="chat.postMessage", error="fatal_error")
    )
    event = make_event("alice")
    with Captured("temporalio.workflow", "slack_sdk") as logs:
        async with running_worker(client, settings):
            status = await start_approval(time_skipping_env.client, event, settings.task_queue)
            assert status is ResultStatus.STARTED
            handle = time_skipping_env.client.get_workflow_handle_for(
                ApprovalWorkflow.run, event.event_id
            )
            await eventually(
                lambda: any(m.channel == "D0ALICE" for m in fake_slack.messages.values()),
                within=20,
            )
            await time_skipping_env.sleep(timedelta(hours=1))
            await decide(handle, Action.APPROVE, "U0MALLORY")
            await decide(handle, Action.APPROVE, "U0ALICE")
            record = await handle.result()
    assert record.status is EventStatus.APPROVED

    async with httpx.AsyncClient(timeout=10) as http:
        scraped = samples((await http.get(f"http://{bind}/metrics")).text)

    def metric(name: str, **labels: str) -> float:
        """Sum over the labels not given (the SDK adds namespace, task queue, ...)."""
        return sum(
            v
            for (n, ls), v in scraped.items()
            if n == name and set(labels.items()) <= ls and ("task_queue", settings.task_queue) in ls
        )

    notifications = "powertrip_slack_notifications_total"
    assert metric(notifications, method="chat.postMessage", kind="first", result="sent") == 1
    assert (
        metric(
            notifications,
            method="chat.postMessage",
            kind="first",
            result="failed",
            error="fatal_error",
        )
        == 1
    )
    assert metric(notifications, method="chat.update", result="sent") >= 1
    # Decided about an hour after receipt: above the 30-minute bucket, within the 2-hour one.
    decision = "powertrip_time_to_decision"
    assert metric(f"{decision}_count", outcome="approved", rule="sshd-accepted") == 1
    assert metric(f"{decision}_bucket", outcome="approved", le="1800") == 0
    assert metric(f"{decision}_bucket", outcome="approved", le="7200") == 1
    # The Temporal SDK's own metrics come out of the same endpoint.
    assert metric("temporal_workflow_completed_total") >= 1
    assert metric("temporal_activity_execution_latency_count") >= 3

    # Workflow and activity log lines (ours and slack_sdk's) carry the event id.
    ignored = [line for line in logs.lines if line["message"].startswith("ignored")]
    assert ignored and all(line["event_id"] == event.event_id for line in ignored)
    slack_lines = [line for line in logs.lines if line["logger"].startswith("slack_sdk")]
    assert slack_lines and all(line.get("event_id") == event.event_id for line in slack_lines)

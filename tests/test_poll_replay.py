"""PollWorkflow versioning: a schedule starts a poll every interval, so any deploy finds polls in
flight. Histories recorded before polling became per-source (tests/histories/poll/*.json, made by
`python -m tests.histories.record_poll`) must replay on the current code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.poll import PollWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories" / "poll").glob("*.json"))


def test_every_recorded_poll_shape_is_present() -> None:
    assert {p.stem for p in HISTORIES} == {"poll_ok", "poll_failed_alert", "poll_recovered"}


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_current_code_replays_recorded_poll(path: Path) -> None:
    history = load(path)
    replayer = Replayer(workflows=[PollWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, (
        f"PollWorkflow no longer replays {path.name}: guard the change with workflow.patched\n"
        f"{result.replay_failure}"
    )

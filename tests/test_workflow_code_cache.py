"""The worker compiles each workflow module once (bench/PROFILE.md): Temporal's sandbox imports a
workflow's module afresh for every run it starts or replays, and without bytecode on disk each of
those imports compiled the source again. The sandbox must still give every run its own module."""

from __future__ import annotations

import asyncio
import importlib.machinery
import sys
from typing import Any

import pytest
import temporalio.workflow
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from worker import WorkflowCodeCache
from workflows.approval import ApprovalWorkflow


class _Recording(SandboxedWorkflowRunner):
    """The sandbox as the worker runs it, keeping each run's instance."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        instance = super().create_instance(det)
        self.instances.append(instance)
        return instance

    @property
    def instances(self) -> list[Any]:
        return self.__dict__.setdefault("_instances", [])


def _sandboxed_runs(count: int) -> list[Any]:
    """`count` new sandboxed runs of ApprovalWorkflow (what a new run or a replay does first)."""
    defn = temporalio.workflow._Definition.must_from_class(ApprovalWorkflow)
    runner = _Recording()

    async def create() -> None:  # the workflow instance wants a running event loop
        for _ in range(count):
            runner.prepare_workflow(defn)

    asyncio.run(create())
    return runner.instances


def test_a_workflow_module_is_read_and_compiled_once_for_many_sandboxed_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded: list[str] = []
    get_code = importlib.machinery.SourceFileLoader.get_code

    def counting(self: Any, fullname: str) -> Any:
        loaded.append(fullname)
        return get_code(self, fullname)

    monkeypatch.setattr(importlib.machinery.SourceFileLoader, "get_code", counting)
    WorkflowCodeCache.install()
    WorkflowCodeCache.install()  # one finder, however many workers a process builds
    assert sum(isinstance(f, WorkflowCodeCache) for f in sys.meta_path) == 1

    assert len(_sandboxed_runs(3)) == 3

    assert loaded.count("workflows.approval") <= 1, loaded


def test_each_sandboxed_run_still_executes_the_module_afresh() -> None:
    WorkflowCodeCache.install()
    first, second = (
        instance.globals_and_locals["__temporal_workflow_class"] for instance in _sandboxed_runs(2)
    )
    # A class object per run (its module's globals are its own), neither the worker's own.
    assert first is not second
    assert ApprovalWorkflow not in (first, second)
    assert first.__qualname__ == second.__qualname__ == "ApprovalWorkflow"

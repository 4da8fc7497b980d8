"""Workflow modules and the SDK's sandbox. Sandboxed (the tests, `POWERTRIP_WORKFLOW_SANDBOX`),
the worker compiles each workflow module once (bench/PROFILE.md): the sandbox imports a
workflow's module afresh for every run it starts or replays, and without bytecode on disk each of
those imports compiled the source again; every run still gets its own module. Unsandboxed (the
worker's default), runs share the module, so it must keep no state."""

from __future__ import annotations

import ast
import asyncio
import importlib.machinery
import sys
from pathlib import Path
from typing import Any

import pytest
import temporalio.workflow
from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from powertrip.settings import Settings
from tests.harness import make_settings
from worker import WorkflowCodeCache, workflow_runner
from workflows.approval import ApprovalWorkflow

ROOT = Path(__file__).resolve().parents[1]


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


MUTABLE_CALLS = {"list", "dict", "set", "bytearray", "deque", "defaultdict", "Counter"}
CACHES = {"cache", "lru_cache"}
MUTABLE_VALUES = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)


def _mutable(value: ast.expr | None) -> bool:
    return isinstance(value, MUTABLE_VALUES) or (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in MUTABLE_CALLS
    )


def _shared_state(tree: ast.Module) -> list[str]:
    """What one workflow run could leave for the next when runs share a module (no sandbox):
    module- and class-level names bound to a mutable container, `global` statements, caches
    (`functools.cache`, `lru_cache`) and mutable default arguments."""
    found = [f"line {n.lineno}: global" for n in ast.walk(tree) if isinstance(n, ast.Global)]
    bodies = [tree.body] + [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for body in bodies:
        for stmt in body:
            value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
            if _mutable(value):
                found.append(f"line {stmt.lineno}: {ast.unparse(stmt)[:60]}")
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name in CACHES:
                found.append(f"line {node.lineno}: @{name} {node.name}")
        defaults = [*node.args.defaults, *node.args.kw_defaults]
        found += [f"line {node.lineno}: {node.name}'s default" for d in defaults if _mutable(d)]
    return found


def test_workflow_modules_keep_no_state_a_run_could_leave_for_the_next() -> None:
    """The worker runs workflows without the sandbox (`worker.workflow_runner`), so every run of
    a workflow shares its module: a module- or class-level container would carry one run's
    state into another's, and differ on replay."""
    modules = sorted((ROOT / "workflows").glob("*.py"))
    assert len(modules) > 5
    found = {m.name: _shared_state(ast.parse(m.read_text())) for m in modules}
    assert not any(found.values()), found
    # The check finds what it looks for.
    caught = "A = []\nclass B:\n    c = dict()\nglobal d\n@functools.cache\ndef e(f=[]): ...\n"
    assert len(_shared_state(ast.parse(caught))) == 5


def test_the_worker_runs_workflows_in_the_sandbox_only_when_asked() -> None:
    production = make_settings("http://127.0.0.1:1/api/", workflow_sandbox=False)
    assert isinstance(workflow_runner(production), UnsandboxedWorkflowRunner)
    assert Settings.model_fields["workflow_sandbox"].default is False
    # Every test's worker runs them sandboxed (tests/harness.make_settings).
    assert isinstance(
        workflow_runner(make_settings("http://127.0.0.1:1/api/")), SandboxedWorkflowRunner
    )

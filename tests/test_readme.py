"""The README's commands, as written, in a fresh clone with nothing beside it (issue 17): a README
example that stops working fails here.

What runs, in a temporary folder:

1. **A clone.** `git clone` of this repository, plus your uncommitted edits to tracked files (so
   a README change is tested before it is committed); untracked files are not copied, so a file
   the README needs but git does not have fails here as it would in CI. Nothing is beside it:
   no `../shared`.
2. **Its `.venv`, without reinstalling the world.** A fresh `pip install` of everything costs
   minutes and needs the network, which tests may not use. So the clone's `.venv` is created as
   `scripts/_venv.sh` creates it (`python -m venv`, here `--without-pip`) and is *lent* the
   packages already installed for this test run: one `.pth` line puts this venv's
   site-packages on its path, and the Temporal binaries are linked into its `bin/`. Then the
   README's own commands run their own install step for real: `./scripts/run` and
   `./scripts/test` find `.venv` without their stamp and run `pip install -e .` (offline:
   `PIP_NO_INDEX`, no build isolation), which resolves every dependency of `pyproject.toml`
   against what is lent and installs Powertrip itself (its `powertrip` command, the clone's
   code). A dependency missing from `pyproject.toml` but present here would still pass; one the
   clone's pyproject asks for and nobody installed fails the install.
3. **The README, in one shell, in a network namespace.** `unshare --net` gives the walk a
   loopback of its own, so the README's fixed ports (8000, 7233, 8233, 8765) are free whatever
   else runs on the machine. `./scripts/run` starts in the background; once it prints that it is
   running and `/readyz` answers, every command of every ```sh block runs in README order in one
   bash session (tokens sourced by one command are there for the next), with the venv activated
   as "Two commands" says. The sandbox steps of "Trying it locally" (approve, refused, Not me,
   acknowledge) are clicked between the commands that post their logins, as the sandbox page
   clicks; `tests/test_sandbox_browser.py` walks them in Chromium. `./scripts/test` is
   represented by collecting the suite (`--collect-only`). Then Ctrl-C.

How each command is run is in `tests/readme.py` (`COMMANDS`): as written, with the reader's
own files (`/var/log/auth.log`) and production host swapped for the test's, expected to fail
with a stated message (no Papertrail token here), or skipped with a reason (Docker, AWS). A
command the table does not know fails this test. Output the README shows after a command
(`# {...}`) must match, `...` standing for anything: JSON is compared field by field (times and
URLs by type only).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.readme import COMMANDS, Run, blocks, how

REPO = Path(__file__).resolve().parents[1]
UNSHARE = shutil.which("unshare")
IP = shutil.which("ip")


def clone_with_edits(into: Path) -> Path:
    clone = into / "powertrip"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    changed = subprocess.run(
        ["git", "diff", "--name-only", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in changed:
        if (REPO / name).exists():
            shutil.copy2(REPO / name, clone / name)
        else:
            (clone / name).unlink(missing_ok=True)
    return clone


def lend_installed_packages(clone: Path) -> None:
    """The clone's `.venv`, lent this test run's installed packages (see the module doc)."""
    venv = clone / ".venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True
    )
    here = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    [site_packages] = (venv / "lib").glob("python3*/site-packages")
    (site_packages / "_lent_by_test_readme.pth").write_text(here + "\n")
    for binary in ("temporal", "temporal-test-server"):
        (venv / "bin" / binary).symlink_to(Path(sys.executable).parent / binary)


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if sys.platform != "linux" or UNSHARE is None or IP is None:
        pytest.skip("needs Linux network namespaces (unshare and ip, from util-linux, iproute2)")
    probe = subprocess.run([UNSHARE, "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()}")
    folder = tmp_path_factory.mktemp("readme")
    clone = clone_with_edits(folder)
    lend_installed_packages(clone)
    env = {
        **os.environ,
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip's spelling of --no-build-isolation
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONPATH": str(REPO),  # the walker itself (tests/readme.py), not the clone
    }
    in_namespace = [UNSHARE or "unshare", "--net", "--", "sh", "-c", 'ip link set lo up && "$@"']
    done = subprocess.run(
        [*in_namespace, "-", sys.executable, "-m", "tests.readme", str(clone)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_every_readme_command_is_known_to_this_test() -> None:
    unknown = [
        f"README.md:{b.line}: {command}"
        for b in blocks()
        for command, _ in b.commands()
        if how(command) is None
    ]
    assert unknown == [], "run, swap the reader's files, or skip with a reason (tests/readme.py)"


def test_no_table_entry_is_left_over() -> None:
    used = {prefix for prefix, _ in COMMANDS}
    matched = {
        prefix
        for b in blocks()
        for command, _ in b.commands()
        for prefix, _ in COMMANDS
        if command.startswith(prefix)
    }
    assert used == matched, f"no longer in the README: {sorted(used - matched)}"


def test_run_starts_serves_and_stops_cleanly(walked: dict[str, Any]) -> None:
    output = walked["run_output"]
    assert "Powertrip is running" in output
    assert walked["ready_after"] < 180, walked["ready_after"]
    assert walked["run_exit"] == 0, output[-3000:]
    stopping = output[output.index("stopping Powertrip") :]
    noise = [line for line in stopping.splitlines() if "WARN" in line or "Traceback" in line]
    assert noise == [], "Ctrl-C should stop quietly:\n" + "\n".join(noise[:20])
    # The sandbox keeps its messages beside the dev server's events.
    assert {"temporal.db", "fake-slack.json", "secrets.env", "config.yaml"} <= set(
        walked["state_files"]
    )


def test_trying_it_locally_walks_through_the_sandbox(walked: dict[str, Any]) -> None:
    assert walked["sandbox"] == [
        "alice approved papertrail-1001",
        "mallory refused on papertrail-1002",
        "alice: not me",
        "sec1 acknowledged",
    ]


def _steps(walked: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"README.md:{s['line']}: {s['command'].splitlines()[0][:70]}", s) for s in walked["steps"]
    ]


def test_every_command_works_as_written(walked: dict[str, Any]) -> None:
    assert walked["unknown"] == []
    failures = []
    for where, step in _steps(walked):
        action = how(step["command"])
        assert isinstance(action, Run)
        worked = step["exit"] == action.exit and (
            action.says is None or action.says in step["output"]
        )
        if action.broken_until:
            if worked:
                failures.append(f"{where}: works now; remove broken_until ({action.broken_until})")
            continue
        if not worked:
            failures.append(f"{where}: exit {step['exit']}\n{step['output'][-1500:]}")
        elif step["shown"] is not None:
            mismatch = shown_mismatch(step["shown"], step["output"])
            if mismatch:
                failures.append(f"{where}: README shows {step['shown']!r}; {mismatch}")
    assert failures == [], "\n\n".join(failures)


def test_the_test_command_collects_the_suite(walked: dict[str, Any]) -> None:
    [step] = [s for _, s in _steps(walked) if s["command"] == "./scripts/test"]
    assert re.search(r"\d+ tests collected", step["output"]), step["output"][-2000:]


# -- comparing what the README shows with what came out ---------------------------------------

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def shown_mismatch(shown: str, output: str) -> str | None:
    """Why `output` is not what the README `shown` (None when it is)."""
    try:
        expected = json.loads(shown)
    except json.JSONDecodeError:
        pattern = ".*".join(re.escape(part) for part in shown.split("..."))
        if re.fullmatch(pattern, output.strip(), re.DOTALL):
            return None
        return f"got {output.strip()[:600]!r}"
    try:
        actual = json.loads(output)
    except json.JSONDecodeError:
        return f"not JSON: {output[:600]!r}"
    return _json_mismatch(expected, actual, "")


def _json_mismatch(expected: Any, actual: Any, path: str) -> str | None:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path or 'top'}: {actual!r} is not an object"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key}: no such field"
            found = _json_mismatch(value, actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) < len(expected):
            return f"{path}: {actual!r}"
        for i, value in enumerate(expected):
            found = _json_mismatch(value, actual[i], f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(expected, str) and (TIME.match(expected) or "..." in expected):
        return None if isinstance(actual, str) else f"{path}: {actual!r} is not a string"
    return None if expected == actual else f"{path}: {actual!r}"


@pytest.mark.parametrize(
    ("shown", "output", "fits"),
    [
        ('{"a":1,...}', '{"a":1,"b":2}', True),
        ('{"a":1,...}', '{"a":2,"b":2}', False),
        ('{"at":"2026-11-27T01:03:12Z","n":1}', '{"at":"2030-01-01T00:00:00Z","n":1,"x":0}', True),
        ('{"url":"http://...","n":1}', '{"url":"http://localhost:8233/x","n":2}', False),
        ('{"events":[{"id":"e1"}]}', '{"events":[]}', False),
    ],
)
def test_shown_output_comparison(shown: str, output: str, fits: bool) -> None:
    assert (shown_mismatch(shown, output) is None) is fits

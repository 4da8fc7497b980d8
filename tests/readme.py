"""The README's shell examples as data, for the tests that run them (`tests/test_readme.py`) and
walk them in a browser (`tests/test_sandbox_browser.py`)."""

from __future__ import annotations

import gzip
import json
import queue
import re
import shlex
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"


@dataclass(frozen=True)
class Block:
    """One ```sh block: the section it is in, its line in the README, its text (indentation of
    a list item removed)."""

    section: str
    line: int
    text: str

    @property
    def first(self) -> str:
        """The first command line, naming the block in the test's table."""
        return next(line for line in self.text.splitlines() if line.strip())

    def commands(self) -> list[tuple[str, str | None]]:
        """Each command (continuation lines joined) with the `# ...` output shown right after
        it, if any (one comment line or several)."""
        found: list[tuple[str, str | None]] = []
        command: list[str] = []
        lines = self.text.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.strip():
                continue
            if line.startswith("#") and found and not command:
                shown = [line[1:].strip()]
                while i < len(lines) and lines[i].startswith("#"):
                    shown.append(lines[i][1:].strip())
                    i += 1
                found[-1] = (found[-1][0], "".join(shown))
                continue
            command.append(line)
            if not line.rstrip().endswith("\\") and _balanced("\n".join(command)):
                found.append(("\n".join(command), None))
                command = []
        return found


def _balanced(text: str) -> bool:
    """True once the shell would run it: no quote left open across lines."""
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True


def blocks(text: str | None = None) -> list[Block]:
    """Every ```sh block of the README, in order."""
    text = README.read_text() if text is None else text
    found: list[Block] = []
    section = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(\s*)```(\w*)\s*$", line)
        if fence:
            indent, language = len(fence.group(1)), fence.group(2)
            start = i + 1
            body: list[str] = []
            i += 1
            while not lines[i].strip().startswith("```"):
                body.append(lines[i][indent:])
                i += 1
            if language == "sh":
                found.append(Block(section, start + 1, "\n".join(body)))
        elif re.match(r"^#{1,4} ", line):
            section = line.lstrip("#").strip()
        i += 1
    return found


def curl_json_bodies(block: Block) -> list[dict[str, Any]]:
    """The JSON each `curl ... -d '<json>'` of a block posts."""
    bodies = []
    for command, _ in block.commands():
        words = shlex.split(command.replace("\\\n", " "), comments=True)
        if words and words[0] == "curl" and "-d" in words:
            bodies.append(json.loads(words[words.index("-d") + 1]))
    return bodies


def section_blocks(section: str) -> list[Block]:
    return [b for b in blocks() if b.section == section]


# ---------------------------------------------------------------------------------------------
# Running the README in a fresh clone (tests/test_readme.py runs this as a separate process,
# inside a network namespace of its own so the README's fixed ports are free).

RUN_READY = "Powertrip is running"
MARK = "@@README-STEP-DONE@@"


@dataclass
class Step:
    """What running one README command gave: its exit code and output."""

    line: int
    command: str
    ran: str
    shown: str | None
    exit: int
    output: str


class Shell:
    """One bash session, as a reader's terminal: what one command sets (sourced tokens, an
    activated venv) holds for the next."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, command: str, timeout: float = 300) -> tuple[int, str]:
        """Run `command` (stdin closed, as typed at a prompt), return its exit code and output
        (stdout and stderr together)."""
        assert self.process.stdin is not None
        # A group: a trailing `# comment` cannot swallow the redirection.
        self.process.stdin.write(f"{{\n{command}\n}} </dev/null\n")
        self.process.stdin.write(f"printf '\\n{MARK} %s\\n' \"$?\"\n")
        self.process.stdin.flush()
        output: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                return 124, "".join(output) + f"\n(no end within {timeout:.0f}s)"
            if line is None:
                return 125, "".join(output) + "\n(the shell exited)"
            if line.startswith(MARK):
                text = "".join(output)
                return int(line.split()[1]), text[:-1] if text.endswith("\n") else text
            output.append(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@dataclass(frozen=True)
class Run:
    """Run the command, with the reader's own files and hosts (`swap`) replaced by the test's:
    it must exit `exit` and, if `says` is given, print it."""

    swap: tuple[tuple[str, str], ...] = ()
    exit: int = 0
    says: str | None = None
    # Fails today for a reason fixed elsewhere: the test insists it still fails, so that the
    # entry is removed (and the command checked) once it works.
    broken_until: str | None = None


@dataclass(frozen=True)
class Skip:
    reason: str


SAMPLE_AUTH_LOG = (
    "Nov 27 01:02:03 bastion sshd[4242]: Accepted publickey for alice from 203.0.113.7 port 52100"
    " ssh2\n"
    "Nov 27 01:05:00 bastion sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ;"
    " COMMAND=/usr/bin/systemctl restart nginx\n"
)
# A trail's delivery file as CloudTrail writes it to S3 (gzipped JSON, one line).
SAMPLE_TRAIL_FILE = "123456789012_CloudTrail_us-east-1_20261127T0105Z_x.json.gz"
SAMPLE_TRAIL_RECORD = {
    "eventVersion": "1.08",
    "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "123456789012"},
    "eventTime": "2026-11-27T01:04:00Z",
    "eventSource": "signin.amazonaws.com",
    "eventName": "ConsoleLogin",
    "sourceIPAddress": "203.0.113.7",
    "responseElements": {"ConsoleLogin": "Success"},
    "eventID": "0b9f3c5e-readme-4000-8000-000000000001",
    "recipientAccountId": "123456789012",
}
SAMPLE_SAVED_SEARCH = (
    '{"id": 1004, "hostname": "db-1", "program": "sshd", "received_at": "2026-11-27T04:00:00Z",'
    ' "message": "Accepted publickey for alice from 203.0.113.7 port 52200 ssh2"}\n'
)
# The reader's own logs: the test's sample instead.
LOGS = (
    ("/var/log/auth.log", "$README_FILES/auth.log"),
    ("/var/log/secure", "$README_FILES/auth.log"),
)

# How each command of the README is run, by how its first line starts. A command not listed
# fails the test: decide how it is checked (or why it cannot be, here) when adding it.
COMMANDS: list[tuple[str, Run | Skip]] = [
    ("./scripts/run", Run()),  # in the background, up to readiness, then Ctrl-C (see walk)
    ("./scripts/test", Run(swap=(("./scripts/test", "./scripts/test --collect-only -q"),))),
    ("source .powertrip/secrets.env", Run()),
    ("set -a; source .powertrip/secrets.env", Run()),
    ("source .venv/bin/activate", Run()),
    ('curl -s -X POST "http://localhost:8000/webhooks/papertrail', Run()),
    ('curl -s -H "Authorization: Bearer $POWERTRIP_API_TOKEN" localhost:8000/v1/events', Run()),
    ('curl -s -G -H "Authorization: Bearer $POWERTRIP_API_TOKEN" localhost:8000/v1/', Run()),
    (
        "curl -s https://powertrip.example.com/webhooks/json",
        Run(
            swap=(
                ("https://powertrip.example.com", "http://localhost:8000"),
                ("$TOKEN", "$POWERTRIP_WEBHOOK_TOKEN"),
            ),
            says='"status":"started"',
        ),
    ),
    ("powertrip rules test /var/log/auth.log", Run(swap=LOGS)),
    ("grep sshd /var/log/secure | powertrip rules test", Run(swap=LOGS)),
    ("powertrip backfill /var/log/auth.log", Run(swap=LOGS)),
    ("powertrip backfill saved-search.json", Run()),
    ("powertrip backfill 123456789012_CloudTrail_", Run()),
    (
        "powertrip backfill --source papertrail",
        Run(exit=2, says="POWERTRIP_PAPERTRAIL_API_TOKEN is not set"),
    ),
    (
        "powertrip backfill --source cloudwatch",
        Skip("needs AWS; tests/test_cloudwatch_polling.py runs it against moto"),
    ),
    ("powertrip events list", Run()),
    ("powertrip events show papertrail-1001", Run(says='"status": "approved"')),
    ("powertrip events approve papertrail-1003", Run(says="(U0SEC1) via cli (run by ")),
    ("powertrip events export", Run(says="decisions made since 2026-11-01")),
    ("temporal operator namespace", Run()),
    (
        "POWERTRIP_CONFIG=.powertrip/config.yaml powertrip expectations create --actor deploy",
        Run(says='"via": "cli"'),
    ),
    ("powertrip expectations list", Run()),
    (
        'curl -s -H "Authorization: Bearer $POWERTRIP_API_WRITE_TOKEN" '
        '-H "Content-Type: application/json" localhost:8000/v1/expectations',
        Run(says='"via":"api"'),
    ),
    ("cp .env.example .env", Skip("Docker does not run here (tests/test_deploy_static.py)")),
    ("$EDITOR deploy/powertrip.yaml", Skip("Docker does not run here")),
    ("docker compose", Skip("Docker does not run here (tests/test_deploy_static.py)")),
]


def how(command: str) -> Run | Skip | None:
    for prefix, action in COMMANDS:
        if command.startswith(prefix):
            return action
    return None


def _click(sandbox: str, user: str, event_id: str, action: str, channel: str | None = None) -> bool:
    """Press a button the way the sandbox page does (POST /_sandbox/click as `user`), on the
    message about `event_id` (in `channel`, if given) that has that button."""
    import httpx

    for message in httpx.get(f"{sandbox}/_fake/messages").json():
        if channel and message["channel"] != channel:
            continue
        for block in message["blocks"]:
            for element in block.get("elements", []):
                if element.get("value") == event_id and element["action_id"] == action:
                    answer = httpx.post(
                        f"{sandbox}/_sandbox/click",
                        json={
                            "user": user,
                            "channel": message["channel"],
                            "ts": message["ts"],
                            "action_id": action,
                            "value": event_id,
                        },
                        timeout=30,
                    )
                    assert answer.json()["ok"], answer.text
                    return True
    raise AssertionError(f"no {action} button for {event_id} in the sandbox")


def _wait(probe: Any, what: str, within: float = 30.0) -> Any:
    import time

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            found = probe()
        except Exception:  # not up yet
            found = None
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {within:.0f}s")


def _record(api: str, token: str, event_id: str) -> dict[str, Any]:
    import httpx

    answer = httpx.get(f"{api}/v1/events/{event_id}", headers={"Authorization": f"Bearer {token}"})
    return dict(answer.json()) if answer.status_code == 200 else {}


def _sandbox_steps(clone: Path, posted: int) -> list[str]:
    """The numbered steps of "Trying it locally" that follow the login `posted`, done as the
    sandbox page does them; returns what was done."""
    api, sandbox = "http://localhost:8000", "http://localhost:8765"
    secrets = dict(
        line.split("=", 1) for line in (clone / ".powertrip/secrets.env").read_text().splitlines()
    )
    token = secrets["POWERTRIP_API_TOKEN"]

    def status(event_id: str) -> Any:
        return lambda: _record(api, token, event_id).get("status")

    def asked(event_id: str) -> Any:
        return lambda: _record(api, token, event_id).get("asked")

    def press(user: str, event_id: str, action: str, channel: str | None = None) -> None:
        """Press `action` on the question that asks about `event_id`: its group's (issue 13: a
        burst is one question, and even a lone event is asked by its group), else its own."""

        def once() -> bool:
            value = _record(api, token, event_id).get("group") or event_id
            return _click(sandbox, user, value, action, channel)

        _wait(once, f"{user} pressing {action} on {event_id}")

    if posted == 1001:  # 1-2: the DM is there; alice approves it
        _wait(asked("papertrail-1001"), "alice asked about 1001")
        press("U0ALICE", "papertrail-1001", "approve")
        _wait(lambda: status("papertrail-1001")() == "approved", "1001 approved")
        return ["alice approved papertrail-1001"]
    if posted == 1002:  # 3-5: mallory refused, alice says Not me, sec1 acknowledges
        import httpx

        _wait(asked("papertrail-1002"), "alice asked about 1002")
        press("U0MALLORY", "papertrail-1002", "approve")
        _wait(
            lambda: any(
                r["key"].startswith("U0MALLORY.")
                for r in httpx.get(f"{sandbox}/_fake/responses").json()
            ),
            "mallory told she may not",
        )
        assert status("papertrail-1002")() == "pending"
        press("U0ALICE", "papertrail-1002", "not_me")
        _wait(lambda: status("papertrail-1002")() == "reported", "1002 reported")
        press("U0SEC1", "papertrail-1002", "acknowledge", "C0SECURITY")
        _wait(lambda: status("papertrail-1002")() == "acknowledged", "1002 acknowledged")
        return ["mallory refused on papertrail-1002", "alice: not me", "sec1 acknowledged"]
    return []


def walk(clone: Path) -> dict[str, Any]:
    """Run the README of `clone` as a reader would, in one shell: `./scripts/run` in the
    background up to readiness, then every command of every ```sh block in order (with the
    sandbox steps of "Trying it locally" between them), then Ctrl-C. Returns what happened."""
    import os
    import signal
    import time

    import httpx

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POWERTRIP_", "VIRTUAL_ENV", "PYTHONPATH"))
    }
    # Not the test's venv: the clone's own, as the README makes it.
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not (Path(p) / "activate").exists()
    )
    files = clone.parent / "reader-files"
    files.mkdir(exist_ok=True)
    (files / "auth.log").write_text(SAMPLE_AUTH_LOG)
    (clone / "saved-search.json").write_text(SAMPLE_SAVED_SEARCH)
    trail = json.dumps({"Records": [SAMPLE_TRAIL_RECORD]}).encode()
    (clone / SAMPLE_TRAIL_FILE).write_bytes(gzip.compress(trail))
    env["README_FILES"] = str(files)

    report: dict[str, Any] = {"steps": [], "unknown": [], "sandbox": []}
    log = (clone.parent / "run.log").open("w")
    started = time.monotonic()
    run = subprocess.Popen(
        ["./scripts/run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    shell = Shell(clone, env)
    try:
        _wait(
            lambda: (
                RUN_READY in (clone.parent / "run.log").read_text()
                and httpx.get("http://localhost:8000/readyz").status_code == 200
            ),
            "./scripts/run ready",
            within=300,
        )
        report["ready_after"] = time.monotonic() - started
        # "activate the venv once per shell with `source .venv/bin/activate`" (Two commands)
        shell.run("source .venv/bin/activate")
        for block in blocks((clone / "README.md").read_text()):
            for command, shown in block.commands():
                if command == "./scripts/run":
                    continue
                action = how(command)
                if action is None:
                    report["unknown"].append(f"README.md:{block.line}: {command}")
                    continue
                if isinstance(action, Skip):
                    continue
                ran = command
                for old, new in action.swap:
                    ran = ran.replace(old, new)
                code, output = shell.run(ran)
                report["steps"].append(Step(block.line, command, ran, shown, code, output))
                posted = re.search(r'"events":\[\{"id":(\d+)', command)
                if posted and code == 0 and block.section == "Trying it locally":
                    report["sandbox"] += _sandbox_steps(clone, int(posted.group(1)))
    finally:
        shell.close()
        run.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            report["run_exit"] = run.wait(timeout=90)
        except subprocess.TimeoutExpired:
            run.kill()
            report["run_exit"] = None
        log.close()
        report["run_output"] = (clone.parent / "run.log").read_text()
    report["state_files"] = sorted(p.name for p in (clone / ".powertrip").iterdir())
    return report


def main() -> None:
    """`python -m tests.readme CLONE`: walk the README of CLONE; print the report as JSON."""
    import dataclasses
    import sys

    report = walk(Path(sys.argv[1]))
    report["steps"] = [dataclasses.asdict(step) for step in report["steps"]]
    print(json.dumps(report))


if __name__ == "__main__":
    main()

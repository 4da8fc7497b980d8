"""A Powertrip worker as a real subprocess (`python worker.py`, as a container runs it), for the
fault suite and the benches: it can be SIGKILLed, restarted, and its memory read from /proc."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import TracebackType

from powertrip.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def worker_environment(settings: Settings, config: Path, **extra: str) -> dict[str, str]:
    """The process environment (`POWERTRIP_*`) that makes `worker.py` use `settings` and the
    YAML config file `config`; the caller's own `POWERTRIP_*` variables are dropped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRIP_")}
    secrets = {
        "POWERTRIP_SLACK_BOT_TOKEN": settings.slack_bot_token,
        "POWERTRIP_SLACK_SIGNING_SECRET": settings.slack_signing_secret,
        "POWERTRIP_DECISION_KEY": settings.decision_key,
        "POWERTRIP_CLI_DECISION_KEY": settings.cli_decision_key,
        "POWERTRIP_WEBHOOK_TOKEN": settings.webhook_token,
        "POWERTRIP_API_TOKEN": settings.api_token,
    }
    env.update({k: v.get_secret_value() for k, v in secrets.items() if v is not None})
    env.update(
        POWERTRIP_TEMPORAL_ADDRESS=settings.temporal_address,
        POWERTRIP_TEMPORAL_NAMESPACE=settings.temporal_namespace,
        POWERTRIP_TASK_QUEUE=settings.task_queue,
        POWERTRIP_SLACK_API_URL=settings.slack_api_url,
        POWERTRIP_CONFIG=str(config),
        POWERTRIP_LOG_FORMAT="json",
        POWERTRIP_LOG_LEVEL="WARNING",
    )
    if settings.security_channel:
        env["POWERTRIP_SECURITY_CHANNEL"] = settings.security_channel
    env.update(extra)
    return env


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` now, in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class WorkerProcess:
    """`python worker.py` for `settings` and `config`, started by `async with` (returns once the
    worker polls its task queue, at most `ready_within` seconds) and stopped at exit: SIGTERM,
    then SIGKILL if it has not exited in 30 s. `kill()` is the crash a fault test injects."""

    def __init__(
        self,
        settings: Settings,
        config: Path,
        *,
        ready_within: float = 60,
        extra: dict[str, str] | None = None,
    ) -> None:
        """`extra`: more environment variables (e.g. `POWERTRIP_METRICS_BIND`)."""
        self.env = worker_environment(settings, config, POWERTRIP_LOG_LEVEL="INFO", **(extra or {}))
        self.ready_within = ready_within
        self.process: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WorkerProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "worker.py", cwd=REPO, env=self.env, stderr=asyncio.subprocess.PIPE
        )
        self._reader = asyncio.create_task(self._read(self.process))
        deadline = time.monotonic() + self.ready_within
        while not any("polling task queue" in line for line in self.log):
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + "\n".join(self.log[-20:]))
            await asyncio.sleep(0.05)
        return self

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            try:
                self.log.append(str(json.loads(raw).get("message", "")))
            except ValueError:
                self.log.append(raw.decode(errors="replace").rstrip())

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_mb(self) -> float:
        """Resident memory of the worker process now, in MiB (Linux /proc)."""
        return rss_mb(self.pid)

    def cpu_seconds(self) -> float:
        """CPU time (user + system, every thread) the worker process has used so far, in
        seconds (Linux /proc/<pid>/stat, fields 14 and 15, in clock ticks)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def kill(self) -> None:
        """SIGKILL: no graceful shutdown, activities in flight are abandoned mid-call."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        if self._reader:
            await self._reader

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL if it has not exited in 30 s; nothing if
        it has exited already. `async with` calls it at exit."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader:
            await self._reader

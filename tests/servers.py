"""Constants and the loopback ASGI server shared by conftest, the harness and the benches."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import uvicorn

if TYPE_CHECKING:
    from powertrip.sandbox.fake_pagerduty import FakePagerDuty

# Sample logs the tests read, kept in the repository (tests/corpus/README.md: sources, licences).
CORPUS = Path(__file__).resolve().parent / "corpus"
SECURITY_CHANNEL = "C0SECURITY"
SLACK_TOKEN = "xoxb-test-token"
SIGNING_SECRET = "test-signing-secret"
DECISION_KEY = "test-decision-key-" + "0123456789abcdef" * 2
CLI_DECISION_KEY = "test-cli-decision-key-" + "fedcba9876543210" * 2
PAPERTRAIL_TOKEN = "pt-token"
PAGERDUTY_ROUTING_KEY = "R0utingKeyOfTheTestService000001"  # 32 letters and digits, like PD's


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedApp:
    """An ASGI app served by uvicorn on a loopback port inside the test event loop; over https
    when given a certificate and its key (PEM files)."""

    def __init__(
        self, app: Any, port: int | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        """`port`: one chosen beforehand (e.g. by free_port()) when the app's settings must
        name its own URL; otherwise a free one. `tls`: certificate and key files for https."""
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ServedApp:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task:
            await self._task


class PagerDutyAt(NamedTuple):
    """The fake Events API a test talks to: its state, its https base URL, and the certificate
    a client must trust to reach it."""

    fake: FakePagerDuty
    url: str
    ca_file: Path
